"""generation.batch and `molops optimize FILE`: a lead series on Dask, resumable, per-lead failures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from generation.batch import optimize_leads
from generation.errors import GenerationError
from generation.optimize import OptimizeSettings, optimize
from generation.retrieval import ExemplarDatabase
from conftest import GENERATOR_LIBRARY

SETTINGS = OptimizeSettings(n_iterations=2, n_samples=8, top_k=2, k_exemplars=3, noise_std=1.5, min_similarity=0.3)
LEADS = [GENERATOR_LIBRARY[0], "C1CC(", GENERATOR_LIBRARY[3]]


@pytest.fixture(scope="module")
def files(tiny_generator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    model, library = folder / "tiny.pt", folder / "library.smi"
    tiny_generator.save(model)
    library.write_text("\n".join(GENERATOR_LIBRARY) + "\n")
    return model, library


def run(out, files, leads=LEADS, settings=SETTINGS, keep=3, retry_failed=False):
    model, library = files
    return optimize_leads(leads, "qed", out=out, settings=settings, generator_path=model, library=library, keep=keep,
                          n_workers=1, processes=False, progress=False, retry_failed=retry_failed)


def test_each_lead_gets_what_a_single_run_gives_and_a_bad_lead_is_a_failed_row(files, tiny_generator, tmp_path):
    out = tmp_path / "series.csv"
    table = run(out, files)
    assert table["lead_record"].drop_duplicates().tolist() == [1, 2, 3]  # input order
    failed = table[table["lead_record"] == 2]
    assert len(failed) == 1 and failed["status"].iloc[0] == "failed"
    assert "C1CC(" in failed["error"].iloc[0] and "cannot parse" in failed["error"].iloc[0]

    for record, lead in ((1, LEADS[0]), (3, LEADS[2])):
        # Every lead starts from the library as loaded: equal to one call on a fresh database.
        single = optimize(lead, "qed", generator=tiny_generator, database=ExemplarDatabase.from_file(files[1]),
                          settings=SETTINGS, progress=False)
        rows = table[table["lead_record"] == record]
        assert rows["lead_qed"].iloc[0] == pytest.approx(single.attrs["lead"]["qed"])
        if single.empty:
            assert rows["status"].tolist() == ["none found"]
            continue
        assert rows["smiles"].tolist() == single["smiles"].head(3).tolist()
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1)) and (rows["status"] == "ok").all()
        assert (rows["n_found"] == len(single)).all()
        assert rows["qed"].is_monotonic_decreasing and (rows["similarity"] >= 0.3).all()

    written = pd.read_csv(out)
    assert written["smiles"].fillna("").tolist() == table["smiles"].fillna("").tolist()


def test_a_rerun_resumes_and_other_settings_or_leads_are_refused(files, tmp_path):
    out = tmp_path / "series.parquet"
    first = run(out, files)
    journal = out.with_name(out.name + ".journal.jsonl")
    lines = journal.read_text().splitlines()
    assert len(lines) == 3

    # A kill after the first lead: the rerun computes the other two only, to the same result.
    journal.write_text(lines[0] + "\n")
    resumed = run(out, files)
    assert len(journal.read_text().splitlines()) == 3
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), first.drop(columns="seconds"))
    assert pd.read_parquet(out)["smiles"].tolist() == resumed["smiles"].tolist()

    with pytest.raises(GenerationError, match=r"other settings.*seed"):
        run(out, files, settings=OptimizeSettings(**{**SETTINGS.__dict__, "seed": 1}))
    assert len(journal.read_text().splitlines()) == 3  # nothing lost

    # Rows belong to molecules, not positions: a lead put in front is the only one computed,
    # and a failure is retried only on request.
    grown = run(out, files, leads=[GENERATOR_LIBRARY[1], *LEADS])
    assert len(journal.read_text().splitlines()) == 4
    assert grown["lead_record"].drop_duplicates().tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(grown[grown["lead_record"] > 1].drop(columns=["seconds", "lead_record"]).reset_index(drop=True),
                                  first.drop(columns=["seconds", "lead_record"]))
    run(out, files, leads=[GENERATOR_LIBRARY[1], *LEADS], retry_failed=True)
    assert len(journal.read_text().splitlines()) == 5  # the unparsable lead, once more


def test_bad_arguments_are_refused_before_any_work(files, tmp_path):
    with pytest.raises(GenerationError, match="unknown objective 'potency'"):
        optimize_leads(LEADS, "potency", out=tmp_path / "x.csv")
    with pytest.raises(GenerationError, match="keep"):
        run(tmp_path / "x.csv", files, keep=0)
    with pytest.raises(Exception, match="unknown format"):
        run(tmp_path / "x.xlsx", files)
    with pytest.raises(Exception, match="absent.pt"):
        optimize_leads(LEADS, "qed", out=tmp_path / "x.csv", generator_path=tmp_path / "absent.pt")
    assert not any(tmp_path.iterdir())


def test_cli_optimizes_a_file_of_leads(files, tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    model, library = files
    leads = tmp_path / "leads.smi"
    leads.write_text(f"{LEADS[0]} paracetamol-like\nnot_a_smiles broken\n{LEADS[2]} chloro\n")
    out = tmp_path / "optimised.sdf"
    args = ["optimize", str(leads), "--objective", "qed", "--min-similarity", "0.3", "--n-iter", "2", "--n-samples", "8",
            "--top-k", "2", "--noise", "1.5", "--model", str(model), "--library", str(library), "--keep", "2",
            "--workers", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best molecule of each of 3 leads" in result.output and "1 of 3 leads failed" in result.output
    rows = [json.loads(line) for line in out.with_name(out.name + ".journal.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sum(r["error"] is not None for r in rows) == 1
    from rdkit import Chem

    records = [m for m in Chem.SDMolSupplier(str(out)) if m is not None]
    assert records and {m.GetProp("lead_name") for m in records} <= {"paracetamol-like", "chloro"}
    assert records[0].GetProp("_Name") == f"{records[0].GetProp('lead_name')} #1"

    missing_out = CliRunner().invoke(app, ["optimize", str(leads), "--model", str(model)])
    assert missing_out.exit_code == 1 and "needs --out" in missing_out.output


def test_a_prompt_is_read_once_and_applied_to_every_molecule(files, tiny_generator, tmp_path):
    from generation.batch import edit_molecules
    from generation.editor import EditSettings, edit
    from generation.prompts import PromptError

    settings = EditSettings(n_iterations=2, n_samples=8, top_k=2, k_exemplars=2, noise_std=1.5, max_rounds=1)
    model, library = files
    molecules = [GENERATOR_LIBRARY[0], "c1ccccc1", "C1CC("]  # benzene has no donor to lose
    out = tmp_path / "edits.csv"
    table = edit_molecules(molecules, "fewer hydrogen bond donors", out=out, n=3, min_similarity=0.3, settings=settings,
                           generator_path=model, library=library, n_workers=1, processes=False, progress=False)
    assert table.attrs["interpretation"] == "decrease H-bond donors (fewer donors); similarity ≥ 0.3"
    assert table.groupby("input_record")["status"].first().tolist()[1:] == ["failed", "failed"]
    assert "already 0, the lowest value possible" in table.loc[table["input_record"] == 2, "error"].iloc[0]
    first = table[table["input_record"] == 1]
    single = edit(GENERATOR_LIBRARY[0], "fewer hydrogen bond donors", n=3, min_similarity=0.3, generator=tiny_generator,
                  database=ExemplarDatabase.from_file(library), settings=settings, progress=False)
    assert first["input_hbd"].iloc[0] == 1.0
    if len(single):
        assert first["smiles"].tolist() == single["smiles"].tolist()
        assert (first["delta_hbd"] == first["hbd"] - 1).all() and (first["similarity"] >= 0.3).all()
    assert len(pd.read_csv(out)) == len(table)
    with pytest.raises(PromptError):
        edit_molecules(molecules, "make it smell of roses", out=tmp_path / "roses.csv")
    assert not (tmp_path / "roses.csv.journal.jsonl").exists()


def test_cli_edits_a_file_of_molecules(files, tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    model, library = files
    molecules = tmp_path / "series.smi"
    molecules.write_text(f"{GENERATOR_LIBRARY[0]} anilide\n{GENERATOR_LIBRARY[1]} paracetamol\n")
    out = tmp_path / "edits.csv"
    result = CliRunner().invoke(app, ["edit", str(molecules), "more hydrogen bond donors", "--min-similarity", "0.3",
                                      "--n-iter", "2", "--model", str(model), "--library", str(library),
                                      "--no-analogues", "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "best edit of each of 2 molecules" in result.output
    table = pd.read_csv(out)
    assert set(table["input_name"]) == {"anilide", "paracetamol"} and "delta_hbd" in table.columns


def test_ctrl_c_stops_a_file_run_with_a_resume_hint(files, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import generation.batch
    from molops.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generation.batch, "optimize_leads", interrupted)
    leads = tmp_path / "leads.smi"
    leads.write_text(f"{LEADS[0]}\n")
    result = CliRunner().invoke(app, ["optimize", str(leads), "--model", str(files[0]), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 130
    assert "stopped; finished rows are kept" in result.output and "same command again to resume" in result.output
