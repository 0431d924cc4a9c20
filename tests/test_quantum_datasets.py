"""quantum_features.cache / datasets: cache hits, Dask featurisation, resume, QM9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ACETATE, METHYL_RADICAL
from molops.distributed import read_journal
from molops.errors import InputFileError
from quantum_features.cache import FeatureCache, cache_key
from quantum_features.calc import prepare_atoms
from quantum_features.errors import QuantumError
from quantum_features.datasets import QM9_TARGETS, featurize_cached, featurize_many, load_qm9, qm9_atoms, qm9_split


def test_repeated_call_is_a_cache_hit(tmp_path):
    atoms = prepare_atoms("CCO")
    with FeatureCache(tmp_path / "cache.h5") as cache:
        first = featurize_cached(atoms, cache)
        assert (cache.hits, cache.misses) == (0, 1)
        again = featurize_cached(atoms, cache)
        assert (cache.hits, cache.misses) == (1, 1)
        np.testing.assert_allclose(again.node_features, first.node_features, rtol=1e-6, atol=1e-6)
        assert again.energy_hartree == first.energy_hartree
        featurize_cached(atoms, cache, level="hf/sto-3g")  # another level is another entry
        assert cache.misses == 2 and len(cache) == 2
        # An entry stored without a gradient does not answer a request for one.
        assert first.gradient_hartree_per_angstrom is None
        with_gradient = featurize_cached(atoms, cache, gradient=True)
        assert cache.misses == 3 and with_gradient.gradient_hartree_per_angstrom.shape == (len(atoms), 3)
        assert featurize_cached(atoms, cache, gradient=True).gradient_hartree_per_angstrom is not None
        assert cache.misses == 3
    with FeatureCache(tmp_path / "cache.h5", mode="r") as reopened:
        assert cache_key(atoms) in reopened
        assert reopened.metadata(cache_key(atoms))["smiles"] == "CCO"


def test_cache_key_tracks_what_changes_the_result():
    atoms = prepare_atoms("CCO")
    moved = atoms.copy()
    moved.positions[0, 0] += 1e-3
    anion = atoms.copy()
    anion.info["charge"] = -1
    keys = {cache_key(atoms), cache_key(moved), cache_key(anion), cache_key(atoms, level="hf/sto-3g"), cache_key(atoms, cutoff=4.0)}
    assert len(keys) == 5
    assert cache_key(atoms) == cache_key(atoms.copy())


def test_not_a_cache_file(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_text("not hdf5")
    with pytest.raises(InputFileError, match="cannot open as an HDF5 feature cache"):
        FeatureCache(path)


def test_featurize_many_records_failures_and_fills_the_cache(tmp_path):
    out = tmp_path / "features.h5"
    frame = featurize_many(["CCO", "C[Pt]", ACETATE, METHYL_RADICAL], out, processes=False, n_workers=2)
    assert frame["key"].tolist() == [0, 1, 2, 3]
    assert frame["error"].iloc[1].startswith("UnsupportedElementError") and "Pt" in frame["error"].iloc[1]
    assert frame["error"].drop(index=1).isna().all()
    assert frame["n_atoms"].iloc[2] == 7
    with FeatureCache(out, mode="r") as cache:
        assert len(cache) == 3
        assert cache.get(frame["cache_key"].iloc[3]).multiplicity == 2
        assert cache.get(frame["cache_key"].iloc[2]).charge == -1
    # Resuming the same cache and journal at another level would return the old level's rows.
    with pytest.raises(QuantumError, match="other settings \\(level: hf/sto-3g/df then, hf/sto-3g now\\)"):
        featurize_many(["CCO"], out, processes=False, n_workers=1, level="hf/sto-3g")


def test_a_fully_cached_run_only_reads_so_jobs_can_share_the_cache(tmp_path):
    out = tmp_path / "features.h5"
    first = featurize_many(["CO", "CCO"], out, processes=False, n_workers=1)
    # Another job reading the cache keeps it open; a finished run must not need write access.
    with FeatureCache(out, mode="r") as other_reader:
        again = featurize_many(["CO", "CCO"], out, processes=False, n_workers=1)
        assert len(other_reader) == 2
    assert again["cache_key"].tolist() == first["cache_key"].tolist()
    # One new molecule needs the writer again, and gets it once the reader is gone.
    grown = featurize_many(["CO", "CCO", "CCCO"], out, processes=False, n_workers=1)
    assert grown["error"].isna().all() and len(grown) == 3


SLOW_FEATURIZE = """
import sys
from quantum_features.datasets import featurize_many

if __name__ == "__main__":
    smiles = ["C" * n + "O" for n in range(1, 13)]
    featurize_many(smiles, sys.argv[1], processes=False, n_workers=1)
"""


def test_interrupted_featurisation_resumes_without_redoing_work(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SLOW_FEATURIZE))
    out = tmp_path / "features.h5"
    journal = tmp_path / "features.h5.journal.jsonl"
    process = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.time() + 120
    while time.time() < deadline and len(read_journal(journal)) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # what Ctrl-C does
    process.wait(timeout=60)
    finished = {row["key"] for row in read_journal(journal)}
    assert 3 <= len(finished) < 12, "the run should have stopped part-way"

    smiles = ["C" * n + "O" for n in range(1, 13)]
    frame = featurize_many(smiles, out, processes=False)
    assert frame["error"].isna().all() and len(frame) == 12
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(row["key"] for row in rows) == list(range(12))  # nothing computed twice
    with FeatureCache(out, mode="r") as cache:
        assert len(cache) == 12


def test_a_changed_structure_under_a_featurised_name_is_computed_again(tmp_path):
    out = tmp_path / "features.h5"
    water = prepare_atoms("O")
    first = featurize_many([water], out, names=["a"], processes=False, n_workers=1)
    stretched = water.copy()
    stretched.positions[1] *= 1.2
    stretched.info.update(water.info)
    again = featurize_many([stretched], out, names=["a"], processes=False, n_workers=1)
    assert again["cache_key"].iloc[0] != first["cache_key"].iloc[0]
    assert again["energy_hartree"].iloc[0] != first["energy_hartree"].iloc[0]


def test_journal_rows_without_features_are_recomputed(tmp_path):
    out = tmp_path / "features.h5"
    featurize_many(["CO", "CCO"], out, processes=False)
    journal = tmp_path / "features.h5.journal.jsonl"
    rows = read_journal(journal)
    lost = next(r for r in rows if r["key"] == 0)  # rows are in completion order: either may be first
    lost["cache_key"] = "0" * 40  # as if the HDF5 write had been lost in a crash
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = featurize_many(["CO", "CCO"], out, processes=False)
    assert frame["error"].isna().all()
    assert [r["key"] for r in read_journal(journal)] == [1, 0]  # key 0 was computed again


def test_qm9_loader_units_and_split():
    split = qm9_split()
    assert len(split) == 130_831
    assert split.value_counts().to_dict() == {"train": 110_000, "val": 10_000, "test": 10_831}
    frame = load_qm9(limit=50)
    water = frame.loc[3]  # QM9 id 3 is water
    assert water["smiles"] == "O" and water["n_atoms"] == 3
    assert water["u0_hartree"] == pytest.approx(-76.404702, abs=1e-6)
    assert water["gap_ev"] == pytest.approx(water["lumo_ev"] - water["homo_ev"], abs=1e-3)
    assert water["homo_ev"] == pytest.approx(-0.2928 * 27.211386, abs=1e-3)
    assert water["split"] == split.loc[3]
    assert set(QM9_TARGETS) <= set(frame.columns)
    atoms = qm9_atoms(water)
    assert atoms.get_chemical_formula() == "H2O" and atoms.info["charge"] == 0
    assert np.linalg.norm(atoms.positions[0] - atoms.positions[1]) == pytest.approx(0.96, abs=0.01)


def test_threaded_featurisation_exits_cleanly(tmp_path):
    # Dask threads (processes=False) used to interleave RDKit's process-global log captures,
    # leaving its logger on a freed stream: every result was right, then SIGSEGV at exit.
    script = textwrap.dedent(
        f"""
        from quantum_features.datasets import featurize_many
        frame = featurize_many(["CO", "CCO", "C1CC"], {str(tmp_path / "f.h5")!r}, processes=False)
        assert frame["error"].notna().sum() == 1, frame
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit code {done.returncode}: {done.stderr[-2000:]}"
