"""Named or file-based molecule libraries and their cached similarity indexes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from molops.data import cache_dir, moses_smiles
from molops.errors import InputFileError
from molops.io import mol_to_smiles, read_molecules
from molops.similarity import SimilarityIndex

__all__ = ["load_library_index", "moses_index_path"]


def moses_index_path(radius: int = 2, n_bits: int = 2048) -> Path:
    """Where the MOSES training-set index is cached."""
    return cache_dir() / f"moses_train_morgan{radius}_{n_bits}.npz"


def load_library_index(
    library: str,
    *,
    index: str | Path | None = None,
    smiles_column: str | None = None,
    progress: bool = False,
    log: Callable[[str], object] = lambda message: None,
) -> SimilarityIndex:
    """A `SimilarityIndex` for ``"moses"`` (built once, then cached) or a molecule file.

    Args:
        library: ``"moses"`` or a path to a .smi/.csv/.sdf/... file.
        index: .npz index to load if it exists, else where to save the one built.
        log: receives one-line status messages (e.g. the CLI's console).

    Raises:
        InputFileError: the library file is missing or holds no readable molecule.
    """
    if library.lower() == "moses":
        path = Path(index) if index is not None else moses_index_path()
        cached = _load_cached(path, log)
        if cached is not None:
            return cached
        log(f"building the MOSES training-set index ({path}); this takes about 2 minutes once")
        built = SimilarityIndex.from_smiles(moses_smiles("train"), progress=progress)
        built.save(path)
        return built
    if index is not None:
        cached = _load_cached(Path(index), log)
        if cached is not None:
            return cached
    frame = read_molecules(library, smiles_column=smiles_column)
    frame = frame[frame["error"].isna()]
    if frame.empty:
        raise InputFileError(f"{library}: no readable molecule to index")
    ids = frame["name"] if "name" in frame.columns else frame["record"]
    ids = [i if isinstance(i, str) and i else r for i, r in zip(ids, frame["record"])]
    built = SimilarityIndex.from_smiles([mol_to_smiles(m) for m in frame["mol"]], ids=ids, progress=progress)
    if index is not None:
        built.save(index)
    return built


def _load_cached(path: Path, log: Callable[[str], object]) -> SimilarityIndex | None:
    """The index cached at `path`; None when there is none or it cannot be read (then it is rebuilt)."""
    if not path.exists():
        return None
    try:
        return SimilarityIndex.load(path)
    except InputFileError as exc:
        # A cache is derived data: one torn by an old kill or damaged on disk is rebuilt, not fatal.
        log(f"the cached index is unreadable and will be rebuilt ({exc})")
        return None
