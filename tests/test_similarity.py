"""molops.similarity: fingerprints, exact agreement with RDKit, index persistence."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem, DataStructs

from conftest import ASPIRIN, CAFFEINE
from molops.data import moses_smiles
from molops.errors import InputFileError
from molops.similarity import SimilarityIndex, morgan_fingerprint, tanimoto


@pytest.fixture(scope="module")
def library() -> list[str]:
    return moses_smiles("test").iloc[:300].tolist() + ["CX", ASPIRIN, CAFFEINE]


def test_tanimoto_basics():
    assert tanimoto(ASPIRIN, ASPIRIN) == 1.0
    assert tanimoto(ASPIRIN, CAFFEINE) == pytest.approx(tanimoto(CAFFEINE, ASPIRIN))
    assert tanimoto(ASPIRIN, CAFFEINE) < 0.2
    assert morgan_fingerprint(ASPIRIN).GetNumBits() == 2048


def test_index_agrees_exactly_with_rdkit_bulk_tanimoto(library):
    index = SimilarityIndex.from_smiles(library)
    assert len(index) == len(library) - 1
    assert index.failures[0][0] == 300 and "CX" in index.failures[0][1]
    fps = [morgan_fingerprint(s) for s in index.smiles]
    for query in (ASPIRIN, library[7], "c1ccc2ccccc2c1"):
        expected = np.array(DataStructs.BulkTanimotoSimilarity(morgan_fingerprint(query), fps))
        np.testing.assert_allclose(index.similarities(query), expected, atol=1e-6)
        hits = index.search(query, k=5)
        assert hits["similarity"].tolist() == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-6)
        assert list(hits["rank"]) == [1, 2, 3, 4, 5]
    top = index.search(ASPIRIN, k=1)
    assert top["smiles"].iloc[0] == ASPIRIN and top["id"].iloc[0] == 301 and top["similarity"].iloc[0] == 1.0


def test_search_limits(library):
    index = SimilarityIndex.from_smiles(library[:20])
    assert len(index.search(ASPIRIN, k=100)) == 20
    assert (index.search(ASPIRIN, k=20, min_similarity=0.3)["similarity"] >= 0.3).all()
    for k, floor in [(0, 0.0), (-3, 0.0), (5, 1.5), (5, float("nan"))]:
        with pytest.raises(ValueError, match="must be ≥ 1 and min_similarity"):
            index.search(ASPIRIN, k=k, min_similarity=floor)


def test_parallel_build_equals_serial_and_save_load(tmp_path, library):
    serial = SimilarityIndex.from_smiles(library, ids=[f"m{i}" for i in range(len(library))])
    parallel = SimilarityIndex.from_smiles(
        library, ids=[f"m{i}" for i in range(len(library))], parallel=True, chunk_size=100
    )
    np.testing.assert_array_equal(serial.fingerprints, parallel.fingerprints)
    assert list(serial.ids) == list(parallel.ids)
    path = serial.save(tmp_path / "lib.npz")
    loaded = SimilarityIndex.load(path)
    np.testing.assert_array_equal(loaded.fingerprints, serial.fingerprints)
    assert loaded.search(CAFFEINE, k=3).equals(serial.search(CAFFEINE, k=3))
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    with pytest.raises(InputFileError, match="not a molops similarity index"):
        SimilarityIndex.load(tmp_path / "junk.npz")
    with pytest.raises(InputFileError, match="no such file"):
        SimilarityIndex.load(tmp_path / "absent.npz")


def test_moses_data_is_available():
    train = moses_smiles("train")
    assert len(train) == 1_584_663
    assert Chem.MolFromSmiles(train.iloc[0]) is not None
    with pytest.raises(ValueError, match="unknown MOSES split"):
        moses_smiles("validation")
