"""Named or file-based molecule libraries and their cached similarity indexes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from molops.data import cache_dir, moses_smiles
from molops.errors import InputFileError
from molops.io import existing_file, mol_to_smiles, read_molecules
from molops.runfiles import file_sha256
from molops.similarity import SimilarityIndex

__all__ = ["load_library_index", "moses_index_path"]

#: The `SimilarityIndex.source` of the MOSES training-set index.
MOSES_SOURCE = "moses:train"


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
        # The default cache is ours to rebuild; a file the user named is never overwritten
        # unless it is an index of this same library.
        cached = _load_cached(path, MOSES_SOURCE, log, rebuild_unreadable=index is None, accept_unknown=True)
        if cached is not None:
            return cached
        log(f"building the MOSES training-set index ({path}); this takes about 2 minutes once")
        built = SimilarityIndex.from_smiles(moses_smiles("train"), progress=progress)
        built.source = MOSES_SOURCE
        built.save(path)
        return built
    # Only a saved index needs to know what it was built from.
    source = f"sha256:{file_sha256(existing_file(library))}" if index is not None else ""
    if index is not None:
        cached = _load_cached(Path(index), source, log, rebuild_unreadable=False)
        if cached is not None:
            return cached
    frame = read_molecules(library, smiles_column=smiles_column)
    frame = frame[frame["error"].isna()]
    if frame.empty:
        raise InputFileError(f"{library}: no readable molecule to index")
    ids = frame["name"] if "name" in frame.columns else frame["record"]
    ids = [i if isinstance(i, str) and i else r for i, r in zip(ids, frame["record"])]
    built = SimilarityIndex.from_smiles([mol_to_smiles(m) for m in frame["mol"]], ids=ids, progress=progress)
    built.source = source
    if index is not None:
        built.save(index)
    return built


def _load_cached(
    path: Path,
    source: str,
    log: Callable[[str], object],
    *,
    rebuild_unreadable: bool,
    accept_unknown: bool = False,
) -> SimilarityIndex | None:
    """The index cached at `path` if it was built from `source`; None when it must be (re)built.

    Raises:
        InputFileError: `path` is not a readable index and is not ours to overwrite
            (``rebuild_unreadable`` False: a file the user named).
    """
    if not path.exists():
        return None
    try:
        cached = SimilarityIndex.load(path)
    except InputFileError as exc:
        if not rebuild_unreadable:
            raise InputFileError(f"{exc}; it is left as it is: remove it or choose another index path") from None
        # Our own cache, torn by an old kill or damaged on disk: derived data, rebuilt.
        log(f"the cached index is unreadable and will be rebuilt ({exc})")
        return None
    if cached.source == source or (accept_unknown and not cached.source):
        return cached
    log(f"the index {path} was built from another library or an earlier version of it; rebuilding it")
    return None
