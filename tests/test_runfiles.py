"""Files of long-running jobs: atomic writes, checkpoints, settings records, metrics tables."""

from __future__ import annotations

import hashlib

import pytest
import torch

from molops.errors import ChemToolkitError, InputFileError
from molops.runfiles import (append_csv, atomic_write, check_run_settings, file_sha256, load_torch_file,
                             read_yaml_options, save_atomic)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "table.bin"  # the folder is created
    with atomic_write(target) as handle:
        handle.write(b"first")
    with atomic_write(target) as handle:
        handle.write(b"second")
        assert target.read_bytes() == b"first"  # untouched until the block ends
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["table.bin"]


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    plain, atomic = tmp_path / "plain.bin", tmp_path / "atomic.bin"
    plain.write_bytes(b"x")
    with atomic_write(atomic) as handle:
        handle.write(b"x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not the temporary file's 0600
    plain.chmod(0o640)
    with atomic_write(plain) as handle:
        handle.write(b"y")
    assert plain.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "weights.pt"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as handle:
            handle.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"]


def test_atomic_writes_to_one_path_use_separate_temporaries(tmp_path):
    # Two writers of one cache (two processes building the MOSES index) never share bytes.
    target = tmp_path / "cache.npz"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first.name != second.name
        first.write(b"A" * 10)
        second.write(b"B" * 3)
    assert target.read_bytes() in (b"A" * 10, b"B" * 3)


def test_checkpoint_round_trip_and_unreadable_files(tmp_path):
    path = tmp_path / "model.pt"
    save_atomic({"model": {"w": torch.ones(2)}, "epoch": 3}, path)
    state = load_torch_file(path, "checkpoint", keys=("model", "epoch"))
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))

    with pytest.raises(InputFileError, match="no such checkpoint file"):
        load_torch_file(tmp_path / "absent.pt", "checkpoint")
    with pytest.raises(InputFileError, match=r"not a checkpoint file \(no optimizer\)"):
        load_torch_file(path, "checkpoint", keys=("model", "optimizer"))
    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InputFileError, match="torn.pt: not a readable checkpoint file"):
        load_torch_file(torn, "checkpoint")


def test_run_settings_refuse_a_resume_under_other_settings(tmp_path):
    journal = tmp_path / "dock.jsonl"
    check_run_settings(journal, {"target": "DRD2", "ph": 7.4})  # no journal yet: just recorded
    journal.write_text('{"key": "a"}\n')
    check_run_settings(journal, {"target": "DRD2", "ph": 7.4})  # same settings: resume
    with pytest.raises(ChemToolkitError, match=r"ph: 7\.4 then, 6\.0 now"):
        check_run_settings(journal, {"target": "DRD2", "ph": 6.0})
    with pytest.raises(ValueError, match="target: DRD2 then, ESR1 now"):
        check_run_settings(journal, {"target": "ESR1", "ph": 7.4}, error=ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dock.jsonl", "dock.settings.json"]


def test_append_csv_writes_the_header_once(tmp_path):
    path = tmp_path / "metrics.csv"
    append_csv(path, {"epoch": 1, "loss": 0.5})
    append_csv(path, {"epoch": 2, "loss": 0.25})
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25"]


def test_yaml_options_name_the_problem(tmp_path):
    path = tmp_path / "train.yaml"
    with pytest.raises(ChemToolkitError, match="does not exist"):
        read_yaml_options(path, ["epochs"])
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ChemToolkitError, match="expected a mapping"):
        read_yaml_options(path, ["epochs"])
    path.write_text("epochs: 3\nlr: 0.1\n")
    with pytest.raises(ChemToolkitError, match=r"unknown option\(s\) \['lr'\]"):
        read_yaml_options(path, ["epochs"])
    assert read_yaml_options(path, ["epochs", "lr"]) == {"epochs": 3, "lr": 0.1}


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 5000  # larger than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == file_sha256(path)
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "absent.bin")
