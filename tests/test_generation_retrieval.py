"""generation.retrieval: properties, retrieval among better molecules, database updates."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import GenerationError
from generation.retrieval import PROPERTY_COLUMNS, ExemplarDatabase, molecule_properties

LIBRARY = ["CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(OC)cc1", "CC(=O)Nc1ccccc1", "c1ccccc1", "CCCCCCCCCC",
           "CC(=O)Nc1ccc(Cl)cc1", "OC(=O)c1ccccc1O"]


def test_properties_match_molops_descriptors_and_mark_bad_smiles():
    from molops.descriptors import compute_descriptors

    frame = molecule_properties(["CC(=O)Nc1ccc(O)cc1", "not a smiles"])
    d = compute_descriptors("CC(=O)Nc1ccc(O)cc1")
    assert list(frame.columns) == list(PROPERTY_COLUMNS)
    assert frame["qed"].iloc[0] == pytest.approx(d.qed) and frame["sa_score"].iloc[0] == pytest.approx(d.sa_score)
    assert frame.iloc[1].isna().all()


def test_retrieves_most_similar_among_allowed_rows_and_grows():
    db = ExemplarDatabase.from_smiles(LIBRARY)
    query = "CC(=O)Nc1ccc(O)cc1"
    top = db.retrieve(query, k=2)
    assert query not in set(top["smiles"])  # identical molecule excluded
    assert top["similarity"].is_monotonic_decreasing and len(top) == 2
    better = db.properties["qed"].to_numpy() > 0.6
    constrained = db.retrieve(query, k=10, allowed=better)
    assert (constrained["qed"] > 0.6).all() and len(constrained) == int(better.sum()) - (query in set(np.asarray(LIBRARY)[better]))
    assert db.retrieve(query, k=3, allowed=np.zeros(len(db), dtype=bool)).empty
    assert db.add(["CC(=O)Nc1ccc(F)cc1", query, "CC(=O)Nc1ccc(F)cc1"]) == 1  # new ones only, once
    assert len(db) == len(LIBRARY) + 1
    assert "CC(=O)Nc1ccc(F)cc1" in set(db.retrieve(query, k=3)["smiles"])
    with pytest.raises(GenerationError, match="mask has 3 rows"):
        db.retrieve(query, allowed=np.ones(3, dtype=bool))
    with pytest.raises(GenerationError, match="cannot be read"):
        ExemplarDatabase.from_smiles(["CCO", "C1CC"])


def test_cached_similarities_stay_exact_as_the_database_grows():
    from molops.similarity import tanimoto

    database = ExemplarDatabase.from_smiles(["CCO", "CCN", "c1ccccc1O"])
    query = "CCOC"
    first = database.similarities(query)
    assert database.add(["CCOCC", "c1ccccc1N"]) == 2
    grown = database.similarities(query)  # cached part for the first index, fresh scan of the new one
    assert np.array_equal(grown[:3], first)
    assert np.allclose(grown, [tanimoto(query, s) for s in database.smiles], atol=1e-6)


def test_a_library_file_keeps_the_rows_the_generator_can_read_and_says_what_it_skipped(tmp_path):
    path = tmp_path / "exemplars.smi"
    path.write_text("CCOc1ccccc1 phenetole\n[Xe] xenon\nC1CC broken\nCC(=O)Nc1ccc(O)cc1 paracetamol\n")
    messages: list[str] = []
    database = ExemplarDatabase.from_file(path, log=messages.append)
    assert len(database) == 2
    assert "2 of 4 rows skipped" in messages[0] and "record 2" in messages[0]
    unusable = tmp_path / "unusable.smi"
    unusable.write_text("[Xe]\n")
    with pytest.raises(GenerationError, match="no row can serve as an exemplar .*'\\[Xe\\]'"):
        ExemplarDatabase.from_file(unusable)
