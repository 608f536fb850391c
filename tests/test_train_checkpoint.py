"""Checkpoints: atomic writes, safe loading, refusal of foreign or unsafe files."""

import errno
import io
import os

import pytest
import torch

from accelerated import checkpoint, files
from accelerated.checkpoint import CheckpointError


class Exploit:
    """What a malicious checkpoint carries: unpickling it would run a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_save_keeps_the_newest_and_loads_with_weights_only(tmp_path):
    for step in (0, 5, 10, 15):
        checkpoint.save(tmp_path, step, {"G": {"w": torch.full((2,), float(step))}}, keep=2)
    found = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step-00000010.pt", "step-00000015.pt"]
    path, state = checkpoint.latest(tmp_path)
    assert path == found[-1] and state["step"] == 15 and state["G"]["w"].tolist() == [15.0, 15.0]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


def test_failed_write_leaves_previous_checkpoint_usable(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, 1, {"x": torch.ones(3)}, keep=3)

    def disk_full(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path, 2, {"x": torch.zeros(3)}, keep=3)
    monkeypatch.undo()
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-00000001.pt"]
    assert list((tmp_path / "checkpoints").iterdir()) == [tmp_path / "checkpoints" /
                                                           "step-00000001.pt"]
    assert checkpoint.latest(tmp_path)[1]["x"].tolist() == [1.0, 1.0, 1.0]


class FullDisk(io.FileIO):
    """A file on a disk with `room` bytes free: write() fails with ENOSPC beyond them."""

    room = 4096

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_full_disk_inside_the_real_torch_save_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, 1, {"x": torch.ones(3)}, keep=3)
    monkeypatch.setattr(files, "open", lambda path, mode: FullDisk(path, mode), raising=False)
    with pytest.raises(OSError) as err:  # the zip writer raises RuntimeError("unexpected pos")
        checkpoint.save(tmp_path, 2, {"x": torch.zeros(10_000)}, keep=3)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(tmp_path / "checkpoints" / ".step-00000002.pt.tmp")
    with pytest.raises(OSError, match=r"No space left on device: .*\.best\.json\.tmp"):
        files.write_text_atomic(tmp_path / "best.json", "x" * 10_000)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000001.pt"]
    assert not (tmp_path / "best.json").exists() and not (tmp_path / ".best.json.tmp").exists()


def test_a_checkpoint_whose_name_lies_about_its_step_is_never_taken_nor_kept(tmp_path):
    for step in (3, 4):
        checkpoint.save(tmp_path, step, {"x": torch.ones(1)}, keep=3)
    os.replace(checkpoint.path_for(tmp_path, 4), checkpoint.path_for(tmp_path, 99))
    warnings = []
    path, state = checkpoint.latest(tmp_path, warn=warnings.append)
    assert state["step"] == 3 and path == checkpoint.path_for(tmp_path, 3)
    assert "holds step 4, not the step 99 its name says" in warnings[0]
    # Pruning keeps the fresh checkpoint, even with keep=1, and drops the stale "newer" file.
    checkpoint.save(tmp_path, 5, {"x": torch.ones(1)}, keep=1)
    assert checkpoint.list_checkpoints(tmp_path) == [checkpoint.path_for(tmp_path, 5)]


def test_pruning_counts_only_good_checkpoints_and_drops_later_steps(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(tmp_path, step, {"x": torch.ones(1)}, keep=5)
    checkpoint.path_for(tmp_path, 3).write_bytes(b"garbage")
    checkpoint.path_for(tmp_path, 2).write_bytes(b"PK\x03\x04 truncated")
    # A resume from step 1 (say): the files of steps 2 to 4 are a history the run left.
    checkpoint.save(tmp_path, 2, {"x": torch.ones(1)}, keep=2)
    assert checkpoint.list_checkpoints(tmp_path) == [checkpoint.path_for(tmp_path, s)
                                                      for s in (1, 2)]
    # Damaged files do not count towards `keep`: the newest good ones stay.
    checkpoint.path_for(tmp_path, 2).write_bytes(b"garbage")
    checkpoint.save(tmp_path, 3, {"x": torch.ones(1)}, keep=2)
    assert checkpoint.list_checkpoints(tmp_path) == [checkpoint.path_for(tmp_path, s)
                                                      for s in (1, 3)]


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    checkpoint.save(tmp_path, 1, {"x": torch.ones(1)}, keep=3)
    checkpoint.path_for(tmp_path, 2).write_bytes(b"PK\x03\x04 truncated")
    warnings = []
    _, state = checkpoint.latest(tmp_path, warn=warnings.append)
    assert state["step"] == 1 and "damaged" in warnings[0]


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = checkpoint.path_for(tmp_path, 3)
    path.parent.mkdir()
    torch.save({"format_version": 1, "step": 3, "G": Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*weights_only=True"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="refusing"):
        checkpoint.latest(tmp_path)  # no silent fallback past an unsafe file
    assert not marker.exists()


def test_newer_format_and_non_checkpoints_are_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": checkpoint.FORMAT_VERSION + 1, "step": 0}, path)
    with pytest.raises(CheckpointError, match="format version 2, newer than this code's 1"):
        checkpoint.load(path)
    torch.save({"weights": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        checkpoint.latest(tmp_path)


def test_other_architecture_names_every_difference():
    state = {"config": {"model": {"g_ch": 32, "resolution": 16, "num_classes": 4}}}
    checkpoint.check_model(state, {"g_ch": 32, "resolution": 16, "num_classes": 4}, "c.pt")
    with pytest.raises(CheckpointError) as err:
        checkpoint.check_model(state, {"g_ch": 64, "resolution": 32, "num_classes": 4}, "c.pt")
    message = str(err.value)
    assert "model.g_ch: checkpoint 32, this run 64" in message
    assert "model.resolution: checkpoint 16, this run 32" in message
    assert "num_classes" not in message


def test_a_checkpoint_from_before_a_new_model_setting_has_its_default():
    """Bug: adding `model.d_minibatch_std` made every older checkpoint 'for another
    architecture' (checkpoint None, this run 0), so no earlier run could be resumed."""
    state = {"config": {"model": {"g_ch": 32, "resolution": 16}}}  # written before the setting
    checkpoint.check_model(state, {"g_ch": 32, "resolution": 16, "d_minibatch_std": 0}, "c.pt")
    with pytest.raises(CheckpointError, match=r"model\.d_minibatch_std: checkpoint 0, this run 4"):
        checkpoint.check_model(state, {"g_ch": 32, "resolution": 16, "d_minibatch_std": 4},
                               "c.pt")


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1), random.seed(2), np.random.seed(3)  # noqa: NPY002
    checkpoint.save(tmp_path, 0, {"rng": checkpoint.rng_state()}, keep=1)
    expected = (torch.rand(3), random.random(), np.random.rand())  # noqa: NPY002
    checkpoint.set_rng_state(checkpoint.latest(tmp_path)[1]["rng"])
    again = (torch.rand(3), random.random(), np.random.rand())  # noqa: NPY002
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]
