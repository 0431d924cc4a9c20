"""quantum_features.labelling: conformer structures, DFT labels with forces, resume, file format."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from molops.errors import ChemToolkitError
from quantum_features.errors import QuantumError
from quantum_features.labelling import LabelOptions, LabelSet, conformer_structures, label_molecules, label_structure

TINY = LabelOptions(level="b3lyp-d3bj/sto-3g", n_conformers=2, n_distorted=1, distortion_angstrom=0.05, device="cpu")


def test_structures_are_conformers_plus_seeded_distortions():
    structures = conformer_structures("CCO", "ethanol", TINY)
    kinds = sorted(s["kind"] for s in structures.values())
    assert kinds.count("distorted") == 1 and 1 <= kinds.count("conformer") <= 2
    again = conformer_structures("CCO", "ethanol", TINY)
    assert again["ethanol/d0"]["positions"] == structures["ethanol/d0"]["positions"]  # seeded
    base = np.array(structures["ethanol/c0"]["positions"])
    moved = np.array(structures["ethanol/d0"]["positions"])
    assert 0.01 < np.abs(moved - base).mean() < 0.1  # σ = 0.05 Å
    with pytest.raises(ChemToolkitError, match="unsupported element"):
        conformer_structures("C[Se]C", "selenide", TINY)


def test_forces_are_minus_the_gradient_of_the_returned_energy():
    item = conformer_structures("CO", "methanol", TINY)["methanol/d0"]
    labelled = label_structure(item, level=TINY.level, device="cpu", conv_tol=1e-11)
    forces = np.array(labelled["forces"])
    step = 1e-3  # Å
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        energies = []
        for sign in (+1, -1):
            moved = {**item, "positions": [list(p) for p in item["positions"]]}
            moved["positions"][atom][axis] += sign * step
            energies.append(label_structure(moved, level=TINY.level, device="cpu", conv_tol=1e-11)["energy_hartree"])
        numeric = -(energies[0] - energies[1]) / (2 * step)
        assert forces[atom, axis] == pytest.approx(numeric, abs=2e-5)  # Hartree/Å


def test_labelling_writes_a_versioned_file_and_resumes(tmp_path):
    out = tmp_path / "labels.npz"
    molecules = {"water": "O", "methanol": "CO", "bad": "C1CC("}
    labels, table = label_molecules(molecules, out, options=TINY, n_workers=1, progress=False)
    assert table.loc[table["key"] == "bad/*", "error"].str.contains("ParseError").all()
    assert len(labels) == table["error"].isna().sum() >= 3
    loaded = LabelSet.load(out)
    assert loaded.level == "b3lyp-d3bj/sto-3g" and loaded.meta["format_version"] == 1
    np.testing.assert_allclose(loaded.frame["energy_hartree"], labels.frame["energy_hartree"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.positions[0], labels.positions[0], atol=1e-5)
    assert loaded.atoms(0).info["multiplicity"] == 1 and loaded.summary()["elements"] == ["H", "C", "O"]

    # Resume: drop the last journal row (as if killed before it finished), run again: only it is redone.
    journal = tmp_path / "labels.npz.journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n")
    again, table2 = label_molecules(molecules, out, options=TINY, n_workers=1, progress=False)
    assert len(journal.read_text().splitlines()) == len(lines)  # one new row, not a full rerun
    assert again.frame["energy_hartree"].tolist() == pytest.approx(labels.frame["energy_hartree"].tolist(), abs=1e-7)
    redone = json.loads(journal.read_text().splitlines()[-1])["key"]
    assert redone == json.loads(lines[-1])["key"]

    # A lost journal: the structures saved in the label file are not computed again.
    journal.unlink()
    third, table3 = label_molecules(molecules, out, options=TINY, n_workers=1, progress=False)
    assert len(journal.read_text().splitlines()) == len(labels) == len(third)  # seeded from the file, none redone
    stopped, _ = label_molecules({"ethane": "CC"}, out, options=TINY, n_workers=1, progress=False, max_minutes=0)
    assert "ethane" not in set(stopped.frame["molecule_id"]) and len(stopped) == len(labels)  # kept, not lost

    # A structure that failed (e.g. before a fix) stays failed on resume unless retried.
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    victim = rows[0]["key"]
    rows.append({**rows[0], "error": "IndexError: tuple index out of range"})
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, _ = label_molecules(molecules, out, options=TINY, n_workers=1, progress=False)
    assert victim not in set(kept.frame["key"])
    retried, _ = label_molecules(molecules, out, options=TINY, n_workers=1, progress=False, retry_failed=True)
    assert victim in set(retried.frame["key"]) and len(retried) == len(labels)

    # A journal resumed under another recipe would mix structures of both: refused.
    with pytest.raises(QuantumError, match="other settings \\(n_conformers: 2 then, 3 now\\)"):
        label_molecules(molecules, out, options=replace(TINY, n_conformers=3), n_workers=1, progress=False)

    train, val = again.split_by_molecule(0.5, seed=0)
    assert set(train.frame["molecule_id"]).isdisjoint(val.frame["molecule_id"]) and len(train) + len(val) == len(again)


def test_a_label_file_only_grows_at_its_end(tmp_path):
    from quantum_features.labelling import _assemble

    def row(key):
        return {"key": key, "smiles": "C", "molecule_id": key.split("/")[0], "kind": "conformer", "conformer": 0,
                "charge": 0, "multiplicity": 1, "energy_hartree": -40.0, "calc_seconds": 1.0, "device": "cpu",
                "numbers": [6], "positions": [[0, 0, 0]], "forces": [[0, 0, 0]], "error": None, "seconds": 1.0}

    journal = tmp_path / "labels.journal.jsonl"
    journal.write_text("".join(json.dumps(row(k)) + "\n" for k in ["m0/c0", "m0/c2", "m1/c0"]))  # m0/c1 was cut off
    wanted = dict.fromkeys(["m0/c0", "m0/c1", "m0/c2", "m1/c0"])
    first = _assemble(journal, wanted, None, {"level": "x"})
    assert first.frame["key"].tolist() == ["m0/c0", "m0/c2", "m1/c0"]
    with journal.open("a") as handle:  # the next run computes the missing structure, and a new molecule
        handle.write(json.dumps(row("m0/c1")) + "\n" + json.dumps(row("m2/c0")) + "\n")
    grown = _assemble(journal, {**wanted, "m2/c0": None}, first, {"level": "x"})
    assert grown.frame["key"].tolist() == ["m0/c0", "m0/c2", "m1/c0", "m0/c1", "m2/c0"]  # appended, not inserted


def test_an_interrupted_batch_keeps_its_finished_structures(tmp_path, monkeypatch):
    from molops import distributed
    from quantum_features import labelling

    def interrupted(task, items, **kwargs):  # two structures finish, then Ctrl-C / SIGTERM
        distributed.map_items(task, dict(list(items.items())[:2]), **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(labelling, "map_items", interrupted)
    out = tmp_path / "labels.npz"
    with pytest.raises(KeyboardInterrupt):
        label_molecules({"water": "O", "methanol": "CO"}, out, options=TINY, n_workers=1, progress=False)
    assert len(LabelSet.load(out)) == 2


def test_bad_files_and_options_give_clear_errors(tmp_path):
    with pytest.raises(QuantumError, match="does not exist"):
        LabelSet.load(tmp_path / "missing.npz")
    with pytest.raises(KeyError, match="unknown level of theory"):
        LabelOptions(level="ccsd(t)/cbs")
    with pytest.raises(ValueError, match="n_conformers"):
        LabelOptions(n_conformers=0)
    with pytest.raises(ValueError, match="distortion_angstrom \\(nan\\)"):
        LabelOptions(distortion_angstrom=float("nan"))
    with pytest.raises(ValueError, match="device 'tpu': choose auto, cpu or gpu"):
        LabelOptions(device="tpu")


def test_cli_label_writes_and_reports(tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    out = tmp_path / "cli_labels.npz"
    result = CliRunner().invoke(app, ["label", "O", "--out", str(out), "--level", "b3lyp-d3bj/sto-3g", "-n", "1",
                                      "--n-distorted", "1", "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "2 structures of 1 molecules at b3lyp-d3bj/sto-3g" in result.output
    assert len(LabelSet.load(out)) == 2
    bad = CliRunner().invoke(app, ["label", "O", "--out", str(out), "--level", "mp7/huge"])
    assert bad.exit_code == 1 and "unknown level of theory" in bad.output


def test_conformer_set_candidates_are_druglike_capped_and_interleaved(monkeypatch, tmp_path):
    from quantum_features import conformer_set

    assert conformer_set._fragments("CC(=O)Nc1ccc(O)cc1") == ["CC=O", "N", "Oc1ccccc1"]  # H-capped, no radicals
    monkeypatch.setattr(conformer_set, "_sources", lambda: {
        "drug": ["CC(=O)Nc1ccc(O)cc1", "CC(=O)Oc1ccccc1C(=O)O", "C[Se]CCN", "[Na+].CC(=O)[O-]"],
        "esol": ["CCCCCCO", "Clc1ccc(Cl)cc1", "CC(=O)Nc1ccc(O)cc1"],
    })
    frame = conformer_set.candidate_molecules(min_heavy=5, max_heavy=25, tier_size=5)
    assert "C[Se]CCN" not in set(frame["smiles"]) and frame["smiles"].is_unique  # Se out, duplicate once
    assert frame["id"].str.match(r"^(drug|esol)-[0-9a-f]{10}$").all()
    assert frame["heavy_atoms"].between(5, 25).all()
    assert frame["heavy_atoms"].iloc[0] < 10  # small tier first
    flexible = conformer_set.candidate_molecules(min_heavy=5, max_heavy=25, min_rotatable=3)
    assert set(flexible["smiles"]) == {"CCCCCCO"}  # hexanol: 4 rotatable bonds; aromatics are rigid
    chlorinated = conformer_set.candidate_molecules(min_heavy=5, max_heavy=25, with_element="Cl")
    assert set(chlorinated["smiles"]) == {"Clc1ccc(Cl)cc1"}
    labels = LabelSet.from_rows([], {"level": "b3lyp-d3bj/sto-3g", "options": {"distortion_angstrom": 0.1}})
    assert labels.summary()["structures"] == 0


def _fake_labels(molecule_ids: list[str]) -> LabelSet:
    rows = [{"key": f"{m}/c{k}", "smiles": "C", "molecule_id": m, "kind": "conformer", "conformer": k, "charge": 0,
             "multiplicity": 1, "energy_hartree": -40.0, "calc_seconds": 1.0, "device": "cpu",
             "numbers": [6], "positions": [[0.0, 0.0, 0.0]], "forces": [[0.0, 0.0, 0.0]]}
            for m in molecule_ids for k in range(2)]
    return LabelSet.from_rows(rows, {})


def test_molecule_split_is_stable_as_the_label_set_grows():
    from quantum_features.conformer_training import split_labels

    small = _fake_labels([f"mol-{i}" for i in range(30)])
    grown = _fake_labels([f"mol-{i}" for i in range(200)])
    held = lambda labels: set(labels.split_by_molecule(0.2, seed=0)[1].frame["molecule_id"])  # noqa: E731
    assert held(small) == held(grown) & set(small.frame["molecule_id"])  # no molecule changes side
    assert 20 <= len(held(grown)) <= 60  # about a fifth
    assert len(held(_fake_labels(["only"]))) == 1  # at least one held out

    train, val, test = (set(part.frame["molecule_id"]) for part in split_labels(grown, 0.2, 0.2, seed=0))
    assert not (train & val or train & test or val & test) and len(train | val | test) == 200
    assert test == held(grown)


def test_data_card_lists_every_command_that_labelled_part_of_the_set(tmp_path):
    from quantum_features.conformer_set import write_data_card

    labels, path = _fake_labels(["drug-a", "esol-b"]), tmp_path / "labels.npz"
    general = "python -m quantum_features.conformer_set --n-molecules 80"
    fluorine = "python -m quantum_features.conformer_set --n-molecules 10 --with-element F"
    for command in (general, fluorine, general):
        card = write_data_card(labels, path, command)
    text = card.read_text()
    assert text.count(f"- `{general}`") == 1 and text.count(f"- `{fluorine}`") == 1
    assert "4 structures of 2 molecules" in text
