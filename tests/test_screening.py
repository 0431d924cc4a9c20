"""molops.screening: the streaming funnel, resume after interruption, report, CLI, Dask cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from molops.screening import ScreenSettings, screen

LIBRARY = """smiles name
CC(=O)Nc1ccc(O)cc1 paracetamol
C1CC( broken
CC(=O)Oc1ccccc1C(=O)O aspirin
Cl[Pt](Cl)(N)N cisplatin
c1ccccc1O phenol
CCN(CC)CCOC(=O)c1ccc(N)cc1 procaine
O=C1C=CC(=O)C=C1 quinone
CN1CCCC1c1cccnc1 nicotine
"""


@pytest.fixture
def library(tmp_path):
    path = tmp_path / "library.smi"
    path.write_text(LIBRARY)
    return path


def test_funnel_records_every_molecule_and_docks_the_best(library, tmp_path):
    out = tmp_path / "screen.parquet"
    settings = ScreenSettings(target="DRD2", dock_top=2, exhaustiveness=1, chunk_size=3)
    summary = screen(library, out, settings, n_workers=1, progress=False)
    table = pd.read_parquet(out)
    assert len(table) == summary.records == 8 and table["record"].tolist() == list(range(8))
    assert summary.unreadable == 1 and summary.standardisation_failed == 1 and summary.docked == 2
    assert "cannot parse" in table.loc[1, "error"] and "unsupported element" in table.loc[3, "error"]
    quinone = table.set_index("name").loc["quinone"]
    assert not quinone["passes_filters"] and "pains" in quinone["filter_failures"]
    docked = table[table["rank"].notna()].sort_values("rank")
    assert len(docked) == 2 and docked["vina_score_kcal_mol"].is_monotonic_increasing
    assert (docked["vina_score_kcal_mol"] < -3).all()
    top_qed = table[table["passes_filters"]].nlargest(2, "qed")["name"]
    assert set(docked["name"]) == set(top_qed)  # preselected by QED
    for key in ("report_html", "report_png"):
        assert summary.outputs[key] and (tmp_path / summary.outputs[key].split("/")[-1]).stat().st_size > 1000
    assert "Top hits" in (tmp_path / "screen_report.html").read_text()
    assert (tmp_path / "screen_top_poses.sdf").read_text().count("$$$$") == 2


def test_an_interrupted_screen_resumes_to_identical_results(library, tmp_path):
    settings = ScreenSettings(target="DRD2", dock_top=2, exhaustiveness=1, chunk_size=2)
    whole = tmp_path / "whole" / "screen.parquet"
    screen(library, whole, settings, n_workers=1, progress=False)
    # The same run "killed" after two chunks and one docked ligand: drop the rest of its state.
    cut = tmp_path / "cut" / "screen.parquet"
    shutil.copytree(whole.parent, cut.parent)
    journal = cut.with_name(cut.name + ".journal.jsonl")
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    # Chunk 2 had failed (e.g. its worker was killed): the resume retries it and counts it once.
    failed = {"key": rows[2]["key"], "error": "KilledWorker: worker lost", "seconds": 1.0}
    journal.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:2], failed]))
    for row in rows[2:]:
        (cut.with_name(cut.name + ".parts") / row["part"]).unlink()
    docking_journal = cut.with_name("screen_docking.parquet.journal.jsonl")
    docking_journal.write_text(docking_journal.read_text().splitlines()[0] + "\n")
    cut.unlink()
    summary = screen(library, cut, settings, n_workers=1, progress=False)
    assert len(journal.read_text().splitlines()) == len(rows) + 1  # only the missing chunks ran again
    assert summary.failed_chunks == 0 and summary.records == 8
    pd.testing.assert_frame_equal(pd.read_parquet(cut), pd.read_parquet(whole))
    with pytest.raises(ValueError, match="other settings"):
        screen(library, cut, ScreenSettings(chunk_size=3), n_workers=1, progress=False)
    with open(library, "a") as handle:  # records are numbered by position: an edited library starts afresh
        handle.write("CCO ethanol\n")
    with pytest.raises(ValueError, match="edited"):
        screen(library, cut, settings, n_workers=1, progress=False)


def test_bad_settings_and_inputs_are_refused(library, tmp_path):
    from molops.errors import ChemToolkitError

    with pytest.raises(ValueError, match="unknown filter"):
        ScreenSettings(filters=("ro3",))
    with pytest.raises(ValueError, match="preselect column 'gap_ev' .* need --predict"):
        ScreenSettings(preselect="gap_ev")  # known before stage 1 runs, not after it
    assert ScreenSettings(preselect="gap_ev", predict=("gap",)).preselect == "gap_ev"
    with pytest.raises(ChemToolkitError, match="does not exist|no such|not found"):
        screen(tmp_path / "missing.smi", tmp_path / "x.parquet", progress=False)
    with pytest.raises(ValueError, match="Parquet"):
        screen(library, tmp_path / "x.csv", progress=False)


def test_cli_screen_on_a_separately_started_dask_cluster(library, tmp_path):
    """A `dask scheduler` and two `dask worker` processes: chunks (and the property model,
    loaded on the workers) travel through real serialisation."""
    from typer.testing import CliRunner

    from molops.cli import app

    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    processes = [subprocess.Popen([*dask, "--scheduler-file", str(scheduler_file), "--port", "0",
                                   "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(120):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.5)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                  "--no-dashboard"]
        processes += [subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "cluster.parquet"
        result = CliRunner().invoke(app, ["screen", str(library), "--out", str(out), "--predict", "gap",
                                          "--filters", "pains", "--chunk-size", "3", "--scheduler", address])
        assert result.exit_code == 0, result.output
        table = pd.read_parquet(out)
        passing = table[table["passes_filters"]]
        assert passing["gap_ev"].between(2, 15).all() and len(passing) == 5
        # Paracetamol, aspirin, procaine, nicotine: > 9 heavy atoms, an extrapolation for the QM9 model.
        big = passing["name"].isin(["paracetamol", "aspirin", "procaine", "nicotine"])
        assert passing.loc[big, "prediction_warning"].str.contains("larger than any QM9").all()
        assert "5 passed the filters, 5 predicted" in result.output
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
