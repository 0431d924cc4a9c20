"""molops.library: the cached MOSES index and file libraries."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import ASPIRIN
from molops import library
from molops.data import moses_smiles
from molops.errors import InputFileError


def test_moses_index_is_built_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLOPS_CACHE", str(tmp_path))
    subset = moses_smiles("train").iloc[:500]
    monkeypatch.setattr(library, "moses_smiles", lambda split: subset)
    messages: list[str] = []
    built = library.load_library_index("moses", log=messages.append)
    assert len(built) == 500 and "building" in messages[0]
    assert library.moses_index_path() == tmp_path / "moses_train_morgan2_2048.npz"
    assert library.moses_index_path().exists()
    monkeypatch.setattr(library, "moses_smiles", lambda split: pytest.fail("index should come from the cache"))
    loaded = library.load_library_index("MOSES")
    assert loaded.search(subset.iloc[3], k=1)["id"].iloc[0] == 3


def test_file_library_with_names_and_saved_index(tmp_path):
    path = tmp_path / "lib.csv"
    pd.DataFrame({"smiles": [ASPIRIN, "CX", "CCO"], "name": ["aspirin", "bad", ""]}).to_csv(path, index=False)
    index_path = tmp_path / "lib.npz"
    index = library.load_library_index(str(path), index=index_path)
    assert list(index.ids) == ["aspirin", 4]  # unnamed rows are identified by their line
    assert index_path.exists()
    empty = tmp_path / "empty.smi"
    empty.write_text("CX\n")
    with pytest.raises(InputFileError, match="no readable molecule"):
        library.load_library_index(str(empty))


def test_cached_indexes_are_rebuilt_when_torn_or_stale_and_user_files_are_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLOPS_CACHE", str(tmp_path / "cache"))
    subset = moses_smiles("train").iloc[:50]
    monkeypatch.setattr(library, "moses_smiles", lambda split: subset)
    library.load_library_index("moses")
    cache = library.moses_index_path()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # written by rename: no .tmp left
    # A kill during an old, non-atomic write: the file holds only its first bytes.
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.raises(InputFileError, match="not a molops similarity index"):
        library.SimilarityIndex.load(cache)
    messages: list[str] = []
    assert len(library.load_library_index("moses", log=messages.append)) == 50
    assert "unreadable and will be rebuilt" in messages[0]
    assert len(library.SimilarityIndex.load(cache)) == 50  # the cache is whole again

    first, second = tmp_path / "first.smi", tmp_path / "second.smi"
    first.write_text(f"{ASPIRIN} aspirin\nCCO ethanol\n")
    second.write_text("c1ccccc1 benzene\n")
    index_path = tmp_path / "lib.npz"
    library.load_library_index(str(first), index=index_path)
    messages.clear()
    other = library.load_library_index(str(second), index=index_path, log=messages.append)
    assert list(other.ids) == ["benzene"] and "another library" in messages[0]  # never the stale neighbours
    assert list(library.load_library_index(str(second), index=index_path).ids) == ["benzene"]
    # A file that is not an index (here the user's own library) is refused, not overwritten.
    with pytest.raises(InputFileError, match="left as it is"):
        library.load_library_index(str(second), index=first)
    assert first.read_text().startswith(ASPIRIN)
