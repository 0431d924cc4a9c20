"""The molops command line: every verb, its files, its errors and exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rdkit import Chem
from typer.testing import CliRunner

from conftest import ASPIRIN, CAFFEINE, CISPLATIN
from molops.cli import app
from molops.io import read_molecules

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("verb", ["describe", "conformers", "similar"])
def test_every_verb_has_help(verb):
    result = run(verb, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_console_script_is_installed():
    executable = Path(sys.executable).parent / "molops"  # the venv's entry point
    assert executable.exists()
    completed = subprocess.run([executable, "--help"], capture_output=True, text=True, check=True)
    for verb in ("describe", "conformers", "similar"):
        assert verb in completed.stdout


def test_describe_smiles_prints_a_table():
    result = run("describe", ASPIRIN)
    assert result.exit_code == 0
    assert "180.159" in result.output and "0.550" in result.output


def test_describe_file_writes_every_row_with_errors(tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame({"name": ["aspirin", "junk", "salt", "cisplatin"],
                  "smiles": [ASPIRIN, "CX", "[Na+].CC(=O)[O-]", CISPLATIN]}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    result = run("describe", str(source), "-o", str(out))
    assert result.exit_code == 0
    table = pd.read_csv(out)
    assert table["name"].tolist() == ["aspirin", "junk", "salt", "cisplatin"]
    assert table["std_smiles"].iloc[2] == "CC(=O)O"  # standardised before describing
    assert table["qed"].iloc[0] == pytest.approx(0.5501, abs=1e-4)
    assert "line 3" in table["error"].iloc[1] and "Pt" in table["error"].iloc[3]
    assert "2 of 4 failed" in result.output and "wrote 4 rows" in result.output  # the table keeps failed rows


def unboxed(text: str) -> str:
    """Click's usage errors come in a rich box that wraps lines: its words, single-spaced."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def test_bad_files_and_output_paths_are_reported_before_any_work(tmp_path, monkeypatch):
    from molops import descriptors

    # An output the writer cannot produce must fail before the computation, not after it.
    monkeypatch.setattr(descriptors, "describe", lambda frame: pytest.fail("computed before checking --out"))
    (tmp_path / "folder.csv").mkdir()
    for out, reason in [("out.xyz", "unknown format '.xyz'"), (str(tmp_path / "folder.csv"), "is a folder")]:
        result = run("describe", ASPIRIN, "-o", out)
        assert result.exit_code == 2 and reason in unboxed(result.output)
    blocker = tmp_path / "file.smi"
    blocker.write_text("CCO\n")
    result = run("describe", ASPIRIN, "-o", str(blocker / "x.csv"))
    assert result.exit_code == 2 and "is a file" in unboxed(result.output)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("smiles,name\n")
    (tmp_path / "plain.smi.gz").write_text("CCO ethanol\n")
    for name, reason in [("empty.csv", "empty file"), ("header.csv", "no molecules"),
                         ("plain.smi.gz", "not a readable gzip file")]:
        result = run("describe", str(tmp_path / name))
        assert result.exit_code == 1 and reason in result.output and name in result.output


def test_toolkit_errors_escaping_a_verb_print_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    from molops import cli, descriptors
    from molops.errors import ChemToolkitError

    (tmp_path / "junk.pt").write_text("not weights")
    result = run("predict", "CCO", "--model", str(tmp_path / "junk.pt"))
    assert result.exit_code == 1 and "not a readable model file" in result.output

    def fails(frame):
        raise ChemToolkitError("a reason the verb did not foresee")

    monkeypatch.setattr(descriptors, "describe", fails)
    monkeypatch.setattr(sys, "argv", ["molops", "describe", "CCO"])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    assert "a reason the verb did not foresee" in captured.err and "Traceback" not in captured.err


def test_bad_single_input_exits_non_zero(tmp_path):
    result = run("describe", "C1CC")
    assert result.exit_code == 1 and "unclosed ring" in result.output
    result = run("describe", str(tmp_path / "missing.sdf"))
    assert result.exit_code == 1 and "no such file" in result.output
    result = run("conformers", CISPLATIN)
    assert result.exit_code == 1 and "Pt" in result.output
    result = run("describe", "")  # not the current folder
    assert result.exit_code == 1 and "empty string" in result.output


def test_conformers_writes_sdf_with_energies(tmp_path):
    out = tmp_path / "confs.sdf"
    result = run("conformers", "CCCCO", "-n", "4", "--seed", "3", "-o", str(out))
    assert result.exit_code == 0
    frame = read_molecules(out)
    assert 1 < len(frame) <= 4
    assert frame["relative_energy_kcal_mol"].iloc[0] == 0.0
    assert (frame["relative_energy_kcal_mol"].diff().dropna() >= 0).all()
    assert all(m.GetConformer().Is3D() and m.GetNumAtoms() == 15 for m in frame["mol"])
    assert frame["name"].iloc[0] == "CCCCO"


def test_similar_in_a_library_file(tmp_path):
    library = tmp_path / "lib.smi"
    library.write_text(f"{ASPIRIN} aspirin\n{CAFFEINE} caffeine\nCC(=O)Oc1ccccc1 phenyl_acetate\nCCCC butane\n")
    out = tmp_path / "hits.csv"
    result = run("similar", "CC(=O)Oc1ccccc1C(=O)OC", "--library", str(library), "-k", "2", "-o", str(out))
    assert result.exit_code == 0
    hits = pd.read_csv(out)
    assert hits["id"].tolist() == ["aspirin", "phenyl_acetate"]
    assert hits["similarity"].is_monotonic_decreasing
    assert Chem.CanonSmiles(hits["smiles"].iloc[0]) == Chem.CanonSmiles(ASPIRIN)


def test_featurize_writes_a_cache_and_resumes(tmp_path):
    from quantum_features.cache import FeatureCache

    source = tmp_path / "mols.smi"
    source.write_text("CCO ethanol\nCC(=O)[O-] acetate\nCX broken\nC[Pt] platinum\n")
    out = tmp_path / "features.h5"
    result = run("featurize", str(source), "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "2 molecules featurised" in result.output and "2 of 4 failed" in result.output
    with FeatureCache(out, mode="r") as cache:
        assert len(cache) == 2
    again = run("featurize", str(source), "--out", str(out), "--workers", "1")
    assert again.exit_code == 0 and "2 molecules featurised" in again.output
    rows = (tmp_path / "features.h5.journal.jsonl").read_text().splitlines()
    assert len(rows) == 3  # ethanol, acetate and the platinum failure: none computed twice
    bad_level = run("featurize", "CCO", "--out", str(out), "--level", "mp2")
    assert bad_level.exit_code == 1 and "unknown level of theory" in bad_level.output
