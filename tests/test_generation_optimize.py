"""generation.optimize: the RetMol loop on a tiny generator trained in the fixture."""

from __future__ import annotations

import math
import re

import pytest

from generation.errors import GenerationError
from generation.optimize import Constraint, OptimizeSettings, optimize
from generation.retrieval import ExemplarDatabase
from molops.objectives import qed, sa_score
from conftest import GENERATOR_LIBRARY

LEAD = GENERATOR_LIBRARY[0]
LIBRARY = GENERATOR_LIBRARY


@pytest.fixture(scope="module")
def generator(tiny_generator):
    return tiny_generator


def test_loop_improves_the_objective_within_the_similarity_floor(generator):
    settings = OptimizeSettings(n_iterations=4, n_samples=16, top_k=3, k_exemplars=3, noise_std=1.5,
                                min_similarity=0.3, seed=0)
    frame = optimize(LEAD, qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY),
                     settings=settings, progress=False)
    lead_qed = frame.attrs["lead"]["qed"]
    assert len(frame) > 0 and frame["qed"].iloc[0] > lead_qed
    assert (frame["similarity"] >= 0.3).all() and LEAD not in set(frame["smiles"])
    assert frame["qed"].is_monotonic_decreasing
    again = optimize(LEAD, qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY),
                     settings=settings, progress=False)
    assert again["smiles"].tolist() == frame["smiles"].tolist()  # seeded

    # A stop rule reads the rows found so far and ends the loop at the first better molecule.
    seen_rows = []

    def first_improvement(found: list[dict]) -> bool:
        seen_rows.append(list(found))
        return any(row["qed"] > lead_qed for row in found)

    stopped = optimize(LEAD, qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY),
                       settings=settings, progress=False, stop=first_improvement)
    assert stopped["qed"].iloc[0] > lead_qed and stopped["iteration"].max() == len(seen_rows) <= 4
    assert {"smiles", "qed", "similarity"} <= set(seen_rows[-1][0])


@pytest.mark.parametrize("bounds, message", [
    ({"column": "qed", "minimum": 2.0}, r"qed ≥ 2 can never be met: qed lies in \[0, 0.9484\]"),
    ({"column": "sa_score", "maximum": -1.0}, r"can never be met: sa_score lies in \[1, 10\]"),
    ({"column": "logp", "minimum": 3.0, "maximum": 1.0}, "can never be met"),
    ({"column": "qed", "minimum": float("nan")}, "a bound is NaN"),
])
def test_constraints_no_molecule_can_meet_are_refused(bounds, message):
    with pytest.raises(GenerationError, match=message):
        Constraint(**bounds)


def test_constraints_are_respected_and_the_ablation_runs_without_a_database(generator):
    settings = OptimizeSettings(n_iterations=3, n_samples=16, top_k=3, noise_std=1.5, min_similarity=0.0,
                                constraints=(Constraint("qed", minimum=0.55),), use_retrieval=False,
                                grammar=False)  # free decoding path too
    frame = optimize(LEAD, sa_score(), generator=generator, settings=settings, progress=False)
    assert (frame["qed"] >= 0.55).all()
    assert frame["sa_score"].is_monotonic_increasing  # minimised objective ranked lowest first
    assert frame.attrs["retrieval_misses"] == 0


def test_one_smiles_is_one_molecule_not_its_characters():
    from molops.similarity import SimilarityIndex

    frame = qed().evaluate("CCO")
    assert list(frame["smiles"]) == ["CCO"] and len(frame) == 1
    with pytest.raises(ValueError, match="single string 'CCO'; wrap it in a list"):
        SimilarityIndex.from_smiles("CCO")


def test_bad_leads_and_empty_databases_give_clear_errors(generator):
    with pytest.raises(GenerationError, match="cannot parse"):
        optimize("C1CC(", qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY), progress=False)
    with pytest.raises(GenerationError, match="cannot be read by the generator"):
        optimize("C[Si](C)(C)c1ccccc1", qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY), progress=False)
    with pytest.raises(GenerationError, match="database is empty"):
        ExemplarDatabase.from_smiles([])
    for lead in (None, ["CCO"]):  # the message names the input instead of failing to render it
        with pytest.raises(GenerationError, match=r"lead (None|\['CCO'\]): cannot make a molecule"):
            optimize(lead, qed(), generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY), progress=False)
    with pytest.raises(GenerationError, match="objective 42: expected a molops.objectives.Objective"):
        optimize(LEAD, 42, generator=generator, database=ExemplarDatabase.from_smiles(LIBRARY), progress=False)
    settings = OptimizeSettings(n_iterations=1, n_samples=2)
    frame = optimize(LEAD, "qed", generator=generator, database=ExemplarDatabase.from_smiles([LEAD]),
                     settings=settings, progress=False)  # an objective by name, as on the command line
    assert frame.attrs["retrieval_misses"] == 1  # nothing better to retrieve: recorded, not fatal
    assert not math.isnan(frame.attrs["lead"]["qed"])


@pytest.mark.parametrize("knob, value, message", [
    ("n_iterations", 0, "n_iterations must be a whole number ≥ 1, got 0"),
    ("n_samples", 2.5, "n_samples must be a whole number"),
    ("min_similarity", 1.5, "min_similarity is a Tanimoto similarity between 0 and 1, got 1.5"),
    ("min_similarity", float("nan"), "min_similarity is a Tanimoto similarity"),
    ("min_similarity", "0.4", "min_similarity is a Tanimoto similarity between 0 and 1, got '0.4'"),
    ("noise_std", -1.0, "noise_std must be a finite number ≥ 0"),
    ("goal", float("inf"), "goal must be a finite number"),
])
def test_impossible_settings_are_refused_before_any_work(knob, value, message):
    with pytest.raises(GenerationError, match=re.escape(message)):
        OptimizeSettings(**{knob: value})


def test_cli_optimize_prints_a_ranked_table_and_writes_it(generator, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from molops.cli import app

    model = tmp_path / "tiny.pt"
    generator.save(model)
    library = tmp_path / "library.smi"
    library.write_text("\n".join(LIBRARY) + "\n")
    out = tmp_path / "optimised.csv"
    args = ["optimize", LEAD, "--objective", "qed", "--min-similarity", "0.3", "--n-iter", "3", "--n-samples", "16",
            "--noise", "1.5", "--goal", "0.7", "--model", str(model), "--library", str(library), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best" in result.output and "QED" in result.output and "goal 0.7" in result.output
    table = pd.read_csv(out)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert (table["similarity"] >= 0.3).all() and table["qed"].is_monotonic_decreasing
    bad = CliRunner().invoke(app, ["optimize", "C1CC(", "--model", str(model), "--library", str(library)])
    assert bad.exit_code == 1 and "cannot parse" in bad.output


def test_decoded_molecules_the_generator_cannot_read_are_not_carried(generator):
    from generation.optimize import generator_can_read

    assert generator_can_read(generator, "CC(=O)Nc1ccccc1")
    assert not generator_can_read(generator, "Cc1ccc(C2=CC=C(C)[SH](C)(=O)C2)cc1")  # [SH] is not a MOSES token
    assert not generator_can_read(generator, "C" * 200)  # longer than the model's max_length


def test_exemplars_reach_the_goal_and_meet_the_similarity_floor_first():
    import numpy as np

    from generation.optimize import _better_exemplars

    database = ExemplarDatabase.from_smiles(LIBRARY)
    values = dict(zip(database.smiles, database.properties["qed"]))
    lead = "CC(=O)Nc1ccccc1"
    lead_value = values[lead]
    better = {s for s, v in values.items() if v > lead_value}
    best = max(values.values())
    plain = _better_exemplars(database, qed(), lead, lead_value, OptimizeSettings(k_exemplars=10))
    assert set(plain) == better and len(plain) > 1
    # With a goal that only the best molecule reaches, it alone is retrieved ...
    goal = OptimizeSettings(k_exemplars=10, goal=best)
    assert _better_exemplars(database, qed(), lead, lead_value, goal) == [max(values, key=values.get)]
    # ... and a goal no molecule reaches falls back to the better ones.
    assert set(_better_exemplars(database, qed(), lead, lead_value, OptimizeSettings(k_exemplars=10, goal=1.0))) == better
    # Molecules meeting the similarity floor to the lead are taken before closer-to-the-input others.
    preferred = np.array([s == plain[-1] for s in database.smiles])
    assert _better_exemplars(database, qed(), lead, lead_value, OptimizeSettings(k_exemplars=1), preferred) == [plain[-1]]
    assert _better_exemplars(database, qed(), lead, lead_value, OptimizeSettings(k_exemplars=10), preferred)[0] == plain[-1]


def test_a_decoded_molecule_whose_canonical_smiles_rdkit_cannot_reread_is_dropped(monkeypatch):
    # Seen in a QED run: RDKit wrote this canonical SMILES for a decoded molecule, then could
    # not kekulize it on reading; the similarity step read it again and the whole run crashed.
    import generation.optimize as optimize_module

    unreadable = "O=c1[nH]ccsc(F)c(F)ccc2c([nH]1)=NN=C2c1cccc(F)c1"
    assert optimize_module._canonical("OCC") == "CCO"
    monkeypatch.setattr(optimize_module.Chem, "MolToSmiles", lambda mol: unreadable)
    assert optimize_module._canonical("OCC") is None
