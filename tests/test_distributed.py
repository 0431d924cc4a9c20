"""molops.distributed: per-item failures, journals, resume after a real kill, clusters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import pytest
from distributed import LocalCluster

from molops.distributed import dask_client, finished_rows, map_items, read_journal
from molops.errors import ChemToolkitError
from molops.descriptors import sa_score


def _heavy_atoms(smiles: str) -> dict[str, int]:
    from molops.io import to_mol

    return {"heavy_atoms": to_mol(smiles).GetNumHeavyAtoms()}


def _logged(func, log: Path, item):
    """Call `func(item)` and append the item to `log`: the workers' record of what ran."""
    with open(log, "a") as handle:
        handle.write(f"{item}\n")
    return func(item)


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _square(x: int) -> dict[str, int]:
    return {"square": x * x}


def test_failures_are_recorded_per_item_in_input_order():
    frame = map_items(_heavy_atoms, ["CCO", "CX", "c1ccccc1", "C1CC"], processes=False, n_workers=2)
    assert frame["key"].tolist() == [0, 1, 2, 3]
    assert frame["heavy_atoms"].iloc[0] == 3 and frame["heavy_atoms"].iloc[2] == 6
    assert frame["error"].iloc[0] is None and frame["error"].iloc[2] is None
    assert frame["error"].iloc[1].startswith("ParseError: SMILES 'CX'")
    assert "unclosed ring" in frame["error"].iloc[3]
    assert (frame["seconds"] >= 0).all()


def _first_of(item: tuple) -> dict[str, int]:
    return {"first": item[0]}


def test_unexpected_errors_say_where_they_were_raised():
    frame = map_items(_first_of, [(1,), ()], processes=False, n_workers=1)
    assert frame["first"].iloc[0] == 1
    error = frame["error"].iloc[1]
    assert error.startswith("IndexError: tuple index out of range (raised in _first_of, ")
    assert "test_distributed.py:" in error
    # The toolkit's own errors already name the input and the reason: no location added.
    parse = map_items(_heavy_atoms, ["CX"], processes=False, n_workers=1)["error"].iloc[0]
    assert parse.startswith("ParseError") and "raised in" not in parse


def test_worker_processes_and_scalar_results():
    # Real worker processes: the function and its results cross process boundaries.
    frame = map_items(sa_score, {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "bad": "CX"}, chunk_size=2)
    assert frame["key"].tolist() == ["aspirin", "bad"]
    assert frame["result"].iloc[0] == pytest.approx(1.580, abs=1e-3)
    assert frame["error"].iloc[1].startswith("ParseError")


def test_existing_scheduler_address():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        frame = map_items(_heavy_atoms, ["CCN", "CCCl"], scheduler=cluster.scheduler_address)
    assert frame["heavy_atoms"].tolist() == [3, 3]


def test_journal_resume_skips_finished_items(tmp_path):
    journal = tmp_path / "run.jsonl"
    map_items(_heavy_atoms, ["C", "CC", "CX"], journal=journal, processes=False)
    assert [row["key"] for row in read_journal(journal)] == [0, 1, 2]
    with open(journal, "a") as handle:
        handle.write('{"key": 3, "heavy')  # a write cut off by a crash
    log = tmp_path / "calls.txt"
    counting = partial(_logged, _heavy_atoms, log)
    frame = map_items(counting, ["C", "CC", "CX", "CCC"], journal=journal, processes=False)
    assert _calls(log) == ["CCC"]  # finished and failed items are not redone
    assert frame["heavy_atoms"].tolist()[:2] == [1, 2] and frame["heavy_atoms"].iloc[3] == 3
    assert frame["error"].iloc[2].startswith("ParseError")
    log.unlink()
    map_items(counting, ["C", "CC", "CX", "CCC"], journal=journal, processes=False, retry_failed=True)
    assert _calls(log) == ["CX"]


def test_the_latest_journal_row_of_a_key_decides(tmp_path):
    journal = tmp_path / "run.jsonl"
    rows = [{"key": 0, "error": "killed"}, {"key": 0, "error": None, "value": 1}, {"key": 1, "error": "killed"}]
    journal.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert finished_rows(journal) == {0: rows[1], 1: rows[2]}  # failed rows are finished...
    assert finished_rows(journal, retry_failed=True) == {0: rows[1]}  # ...unless they are retried
    assert finished_rows(tmp_path / "absent.jsonl") == {}


def test_a_deadline_stops_submitting_and_a_journal_resumes_the_rest(tmp_path):
    journal, log = tmp_path / "run.jsonl", tmp_path / "calls.txt"
    counting = partial(_logged, _square, log)
    items = list(range(10))
    frame = map_items(counting, items, journal=journal, processes=False, n_workers=1, deadline=time.monotonic() - 1)
    # Already out of time: only what fills the single worker thread runs, nothing queues behind it.
    assert frame["key"].tolist() == [0] and _calls(log) == ["0"]
    frame = map_items(counting, items, journal=journal, processes=False, n_workers=1)
    assert frame["square"].tolist() == [x * x for x in items]
    assert sorted(_calls(log), key=int) == [str(x) for x in items]  # nothing computed twice
    # Out of time again, on a finished journal of items beyond the first: their rows still come back.
    late = map_items(counting, {100: 100, **{x: x for x in items}}, journal=journal, processes=False, n_workers=1,
                     deadline=time.monotonic() - 1)
    assert late["key"].tolist() == [100, *items] and late["square"].tolist() == [x * x for x in [100, *items]]


SLOW_JOB = """
import sys, time
from molops.distributed import map_items

def slow_square(x):
    time.sleep(0.15)
    return {"square": x * x}

if __name__ == "__main__":
    map_items(slow_square, list(range(40)), journal=sys.argv[1], processes=False, n_workers=1, max_in_flight=1)
"""


def test_killed_run_resumes_without_redoing_work(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SLOW_JOB))
    journal = tmp_path / "job.jsonl"
    process = subprocess.Popen([sys.executable, str(script), str(journal)])
    deadline = time.time() + 60
    while time.time() < deadline and len(read_journal(journal)) < 5:
        time.sleep(0.05)
    process.kill()
    process.wait()
    finished = {row["key"] for row in read_journal(journal)}
    assert 5 <= len(finished) < 40, "the job should have been killed part-way"

    log = tmp_path / "calls.txt"
    frame = map_items(partial(_logged, _square, log), list(range(40)), journal=journal, processes=False)
    calls = [int(x) for x in _calls(log)]
    assert not finished & set(calls)
    assert sorted(calls) == sorted(set(range(40)) - finished)
    assert frame["square"].tolist() == [x * x for x in range(40)]
    assert frame["error"].isna().all()
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    assert sorted(row["key"] for row in lines) == list(range(40))


@pytest.mark.parametrize("n_workers", [0, -2])
def test_impossible_worker_counts_are_refused_instead_of_waiting_forever(n_workers):
    with pytest.raises(ChemToolkitError, match="must be at least 1"):
        with dask_client(n_workers=n_workers):
            pass
