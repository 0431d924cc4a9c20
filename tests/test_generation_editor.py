"""generation.prompts and generation.editor: reading prompts, refusing what cannot be grounded,
and editing with the tiny generator of conftest."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import GENERATOR_LIBRARY
from typer.testing import CliRunner

from generation.editor import EditSettings, edit
from generation.errors import GenerationError
from generation.prompts import PromptError, interpret
from generation.retrieval import ExemplarDatabase
from molops.cli import app
from molops.similarity import tanimoto


def changes(prompt: str) -> list[tuple[str, int, bool]]:
    return sorted((i.key, i.direction, i.keep) for i in interpret(prompt).intents)


@pytest.mark.parametrize(("prompt", "expected"), [
    ("This molecule is soluble in water.", [("logp", -1, False)]),
    ("make it insoluble in water", [("logp", +1, False)]),
    ("This molecule is like a drug.", [("qed", +1, False)]),
    ("This molecule is not like a drug.", [("qed", -1, False)]),
    ("This molecule has high permeability.", [("tpsa_a2", -1, False)]),
    ("higher polar surface area", [("tpsa_a2", +1, False)]),
    ("This molecule has more hydrogen bond acceptors.", [("hba", +1, False)]),
    ("fewer HBD", [("hbd", -1, False)]),
    ("make it look more like aspirin", [("similarity:aspirin", +1, False)]),
    ("bind DRD2 more strongly while staying drug-like", [("qed", +1, True), ("vina:DRD2", -1, False)]),
    ("soluble and more HBD", [("hbd", +1, False), ("logp", -1, False)]),
])
def test_each_prompt_family_is_grounded(prompt, expected):
    assert changes(prompt) == expected


def test_paraphrases_read_the_same_and_the_reading_is_reported():
    canonical = interpret("This molecule is soluble in water.")
    assert interpret("I'd like something that dissolves better in water").signature() == canonical.signature()
    assert interpret("reduce the lipophilicity").signature() == canonical.signature()
    assert canonical.describe() == "decrease logP (more water-soluble); similarity ≥ 0.6"
    assert interpret("add a donor, keeping it close to the original").min_similarity == 0.7


@pytest.mark.parametrize(("prompt", "message"), [
    ("make it taste better", "cannot ground 'make it taste better'"),
    ("make it less toxic", "cannot change"),
    ("", "empty prompt"),
    ("make it more soluble and less soluble", "contradictory"),
    ("bind the XYZ9 receptor", "names none of the 58 docking targets"),
])
def test_ungrounded_prompts_are_refused(prompt, message):
    with pytest.raises(PromptError, match=message):
        interpret(prompt)


def test_a_prompt_that_is_not_text_or_an_impossible_floor_is_refused_before_reading():
    with pytest.raises(PromptError, match="the prompt is None, not text"):
        interpret(None)
    with pytest.raises(GenerationError, match="min_similarity is a Tanimoto similarity between 0 and 1, got 1.5"):
        interpret("more soluble", min_similarity=1.5)


def test_unknown_drug_names_are_refused_with_suggestions():
    with pytest.raises(PromptError, match=r"unknown drug name 'asprin'.*did you mean aspirin"):
        interpret("make it look like asprin")
    assert changes("make it more like paracetamol") == [("similarity:acetaminophen", +1, False)]  # INN synonym


@pytest.mark.parametrize("goal", [False, True])
def test_edits_respect_the_similarity_floor_and_rank_hits_first(tiny_generator, goal):
    lead = GENERATOR_LIBRARY[0]
    settings = EditSettings(n_iterations=4, n_samples=16, top_k=3, k_exemplars=3, noise_std=1.5, goal=goal)
    frame = edit(lead, "add hydrogen bond donors", n=5, min_similarity=0.3, generator=tiny_generator,
                 database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    assert frame.attrs["interpretation"] == "increase H-bond donors (more donors); similarity ≥ 0.3"
    assert 0 < len(frame) <= 5 and frame.attrs["input"] == {"smiles": lead, "hbd": 1.0}
    assert all(tanimoto(s, lead) >= 0.3 for s in frame["smiles"])
    assert (frame["similarity"] >= 0.3).all()
    assert (frame["delta_hbd"] == frame["hbd"] - 1).all()
    assert (frame["hit_strict"] == (frame["delta_hbd"] >= 1)).all()
    assert frame["hit_strict"].is_monotonic_decreasing  # strict hits first
    assert frame["hit_strict"].any()  # e.g. the amino or hydroxy analogues of the library


def test_a_search_without_strict_hits_gets_a_second_round_with_more_noise(tiny_generator):
    lead = GENERATOR_LIBRARY[0]
    settings = EditSettings(n_iterations=2, n_samples=8, top_k=2, k_exemplars=2, max_rounds=2)
    # A similarity floor of 0.99 admits no analogue with one more donor: both rounds run.
    frame = edit(lead, "add hydrogen bond donors", n=1, min_similarity=0.99, generator=tiny_generator,
                 database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    assert frame.attrs["rounds"] == 2
    assert not frame["hit_strict"].any()


def test_cli_edit_explains_refuses_and_writes(tiny_generator, tmp_path):
    explained = CliRunner().invoke(app, ["edit", "CCO", "fewer hydrogen bond acceptors", "--explain"])
    assert explained.exit_code == 0 and "decrease H-bond acceptors" in explained.output
    refused = CliRunner().invoke(app, ["edit", "CCO", "make it smell of roses"])
    assert refused.exit_code == 1 and "cannot ground" in refused.output
    model = tmp_path / "tiny.pt"
    tiny_generator.save(model)
    library = tmp_path / "library.smi"
    library.write_text("\n".join(GENERATOR_LIBRARY) + "\n")
    out = tmp_path / "edits.csv"
    result = CliRunner().invoke(app, ["edit", GENERATOR_LIBRARY[0], "more hydrogen bond donors", "--min-similarity",
                                      "0.3", "--model", str(model), "--library", str(library), "--out", str(out),
                                      "--no-analogues"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["rank"].tolist() == list(range(1, len(table) + 1)) and "delta_hbd" in table.columns
    assert set(table["source"]) <= {"single-atom edit", "generator"}
    only_generated = tmp_path / "generated.csv"
    result = CliRunner().invoke(app, ["edit", GENERATOR_LIBRARY[0], "more hydrogen bond donors", "--min-similarity",
                                      "0.3", "--model", str(model), "--library", str(library), "--out",
                                      str(only_generated), "--no-single-atom-edits", "--n-iter", "2"])
    assert result.exit_code == 0, result.output
    assert "0 single-atom edits" in result.output
    assert set(pd.read_csv(only_generated)["source"]) == {"generator"}


def test_the_search_goal_is_one_strict_step_of_every_requested_change():
    from generation.editor import _scale, _strict_goal, intent_objective
    from molops import objectives

    lead = "CC(=O)Nc1ccc(O)cc1"  # logP 1.35, 2 donors
    for prompt, expected in [("make it more soluble in water", lambda v: v["logp"] - 0.5),
                             ("add a hydrogen bond donor", lambda v: v["hbd"] + 1)]:
        changes = interpret(prompt).changes
        measures = {i.key: intent_objective(i) for i in changes}
        values = {k: float(m([lead])[0]) for k, m in measures.items()}
        terms = [(measures[i.key], 1.0 / _scale(i)) for i in changes]
        assert _strict_goal(changes, terms, terms[0][0], lead, values) == pytest.approx(expected(values))
    changes = interpret("more soluble and more HBD").changes
    measures = {i.key: intent_objective(i) for i in changes}
    values = {k: float(m([lead])[0]) for k, m in measures.items()}
    terms = [(measures[i.key], 1.0 / _scale(i)) for i in changes]
    score = objectives.weighted_sum(terms, name="edit_score")
    # -logP/0.5 + HBD/1 for the input, plus one strict step of each change
    assert _strict_goal(changes, terms, score, lead, values) == pytest.approx(-values["logp"] / 0.5 + values["hbd"] + 2)


def test_analogue_exemplars_join_the_database_within_the_floor_only(tiny_generator):
    from generation.analogues import one_step_analogues
    from generation.editor import add_analogue_exemplars

    lead = GENERATOR_LIBRARY[0]  # acetanilide
    database = ExemplarDatabase.from_smiles(GENERATOR_LIBRARY)
    added = add_analogue_exemplars(database, lead, 0.5, tiny_generator)
    new = database.smiles[len(GENERATOR_LIBRARY):].tolist()
    assert added == len(new) > 0
    assert set(new) <= set(one_step_analogues(lead))
    assert all(tanimoto(s, lead) >= 0.5 for s in new)
    assert "CC(=O)Nc1ccncc1" in new  # ring CH -> N: one more acceptor, a single atom away
    assert add_analogue_exemplars(database, lead, 0.5, tiny_generator) == 0  # already there
    assert add_analogue_exemplars(ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), lead, 0.99, tiny_generator) == 0


def test_impossible_edit_requests_are_refused_before_any_work():
    with pytest.raises(GenerationError, match="n \\(edits to return\\) must be a whole number ≥ 1, got 0"):
        edit("CCO", "make it more soluble", n=0)
    with pytest.raises(GenerationError, match="between 0 and 1, got 2"):
        edit("CCO", "make it more soluble", min_similarity=2)


def test_how_far_a_property_can_still_move_is_known():
    (qed_up,) = interpret("make it more drug-like").changes
    assert qed_up.room(0.9) == pytest.approx(0.0484) and qed_up.label == "QED"
    (fewer_donors,) = interpret("fewer hydrogen bond donors").changes
    assert fewer_donors.room(2.0) == 2.0
    (like_aspirin,) = interpret("make it look like aspirin").changes
    assert like_aspirin.room(0.25) == pytest.approx(0.75)
    (lipophilic,) = interpret("make it more lipophilic").changes
    assert lipophilic.room(5.0) == float("inf")


def test_changes_a_molecule_cannot_undergo_are_refused(tiny_generator):
    with pytest.raises(GenerationError, match=r"cannot decrease H-bond donors.*already 0, the lowest value possible"):
        edit("c1ccccc1", "fewer hydrogen bond donors", generator=tiny_generator, progress=False)
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"
    with pytest.raises(GenerationError, match=r"Tanimoto similarity to aspirin is already 1, the highest"):
        edit(aspirin, "make it look more like aspirin", generator=tiny_generator, progress=False)


def test_a_strict_change_beyond_the_property_bound_is_reported(tiny_generator):
    lead = "Cc1ccc(NCc2ccccn2)c(Br)c1"  # QED 0.92: QED never exceeds 0.948, so it cannot gain 0.1
    settings = EditSettings(n_iterations=1, n_samples=4, max_rounds=1, analogue_exemplars=False)
    frame = edit(lead, "make it more drug-like", n=1, generator=tiny_generator,
                 database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    (note,) = frame.attrs["notes"]
    assert note.startswith("QED is 0.92") and "highest possible: 0.9484" in note and "out of reach" in note
    ordinary = edit(GENERATOR_LIBRARY[0], "make it more drug-like", n=1, generator=tiny_generator,
                    database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    assert ordinary.attrs["notes"] == []


def test_single_atom_edits_are_offered_and_the_generator_runs_only_when_they_are_not_enough(tiny_generator):
    from generation.analogues import one_step_analogues

    lead = GENERATOR_LIBRARY[0]  # acetanilide: an added OH or NH2 is one more donor
    settings = EditSettings(n_iterations=2, n_samples=8, top_k=2, k_exemplars=2, max_rounds=1)
    frame = edit(lead, "add a hydrogen bond donor", n=2, min_similarity=0.4, generator=tiny_generator,
                 database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    assert frame.attrs["rounds"] == 0 and frame.attrs["single_atom_edits"] >= 2  # enough: no generator run
    assert (frame["source"] == "single-atom edit").all() and frame["hit_strict"].all()
    assert set(frame["smiles"]) <= set(one_step_analogues(lead))
    assert (frame["similarity"] >= 0.4).all() and frame["similarity"].is_monotonic_decreasing
    # More edits than the single-atom ones give: the generator searches, and both are ranked together.
    many = edit(lead, "add a hydrogen bond donor", n=200, min_similarity=0.4, generator=tiny_generator,
                database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY), settings=settings, progress=False)
    assert many.attrs["rounds"] == 1
    assert many.attrs["candidates"] == len(many) and set(many["source"]) <= {"single-atom edit", "generator"}
    assert many.attrs["single_atom_edits"] == (many["source"] == "single-atom edit").sum()
    assert many["hit_strict"].is_monotonic_decreasing
    # Switched off: only generated molecules.
    generated = edit(lead, "add a hydrogen bond donor", n=3, min_similarity=0.4, generator=tiny_generator,
                     database=ExemplarDatabase.from_smiles(GENERATOR_LIBRARY),
                     settings=EditSettings(n_iterations=2, n_samples=8, max_rounds=1, single_atom_edits=False),
                     progress=False)
    assert generated.attrs["rounds"] == 1 and generated.attrs["single_atom_edits"] == 0
    assert (generated["source"] == "generator").all()


def _rediscovering_optimizer(calls: list):
    """A stand-in for `optimize` that decodes only the input's single-atom edits (as the real
    generator often re-decodes its analogue exemplars), counting its calls."""
    from generation.editor import _single_atom_candidates, analogues_within

    def fake_optimize(lead, score, *, settings, **_):
        calls.append(settings.seed)
        near, similarity = analogues_within(lead, settings.min_similarity)
        return _single_atom_candidates(near, similarity, score, ()).drop(columns="source")
    return fake_optimize


def test_rediscovered_single_atom_edits_do_not_count_twice(tiny_generator, monkeypatch):
    import generation.editor as editor

    lead = GENERATOR_LIBRARY[0]
    settings = EditSettings(use_retrieval=False, max_rounds=3)
    calls: list = []
    monkeypatch.setattr(editor, "optimize", _rediscovering_optimizer(calls))
    every = edit(lead, "add a hydrogen bond donor", n=500, min_similarity=0.4, generator=tiny_generator,
                 settings=settings, progress=False)
    wanted = int(every["hit_strict"].sum()) + 1  # one more strict hit than the single-atom edits hold
    assert wanted > 2
    calls.clear()
    frame = edit(lead, "add a hydrogen bond donor", n=wanted, min_similarity=0.4, generator=tiny_generator,
                 settings=settings, progress=False)
    assert len(calls) == 3  # every round ran: re-decoded single-atom edits are not new hits
    assert int(frame["hit_strict"].sum()) == wanted - 1
    # A molecule that is a single-atom edit stays credited as one.
    assert (frame["source"] == "single-atom edit").all() and frame.attrs["single_atom_edits"] == frame.attrs["candidates"]


def test_a_decrease_prompt_ranks_the_larger_decrease_first_among_equally_close_edits(tiny_generator, monkeypatch):
    import generation.editor as editor

    monkeypatch.setattr(editor, "optimize", _rediscovering_optimizer([]))
    frame = edit("CC(=O)Nc1ccc(Cl)cc1", "make it more soluble in water", n=500, min_similarity=0.5,
                 generator=tiny_generator, settings=EditSettings(use_retrieval=False, max_rounds=1), progress=False)
    delta = next(c for c in frame.columns if c.startswith("delta_"))
    ties = frame.groupby(["hit_strict", "hit_loose", "similarity"], sort=False)[delta]
    assert any(len(group) > 1 for _, group in ties)  # single-atom edits often tie on similarity
    assert all(group.is_monotonic_increasing for _, group in ties)  # most negative ΔlogP first


def test_single_atom_candidates_keep_the_constraints_and_score_once():
    from generation.editor import _single_atom_candidates, analogues_within
    from generation.optimize import Constraint
    from molops import objectives

    lead = "CC(=O)Nc1ccc(O)cc1"
    near, similarity = analogues_within(lead, 0.5)
    assert near and (similarity >= 0.5).all() and len(near) == len(similarity)
    qed = objectives.by_name("qed")
    lead_qed = float(qed([lead])[0])
    frame = _single_atom_candidates(near, similarity, qed, (Constraint("qed", minimum=lead_qed),))
    assert list(frame.columns).count("qed") == 1 and (frame["qed"] >= lead_qed).all()
    assert 0 < len(frame) < len(near) and (frame["source"] == "single-atom edit").all()
    assert _single_atom_candidates([], None, qed, ()).empty
