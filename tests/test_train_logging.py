"""metrics.jsonl and TensorBoard logging, and the fallback when TensorBoard is missing."""

import json
import sys

from accelerated.training.metrics_log import MetricsLog, read_records


def test_records_are_json_lines_with_step_kind_and_time(tmp_path):
    log = MetricsLog(tmp_path)
    log.write(1, "train", {"loss_d": 1.5, "loss_g": -0.5})
    log.write(2, "eval", {"score": 0.25})
    log.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kind"]) for r in records] == [(1, "train"), (2, "eval")]
    assert records[0]["loss_d"] == 1.5 and records[1]["score"] == 0.25
    assert all(r["time"] >= 0 for r in records)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_missing_tensorboard_warns_once_and_logs_to_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    log = MetricsLog(tmp_path)
    log.write(1, "train", {"loss_d": 1.0})
    log.write(2, "train", {"loss_d": 2.0})
    log.close()
    err = capsys.readouterr().err
    assert err.count("TensorBoard is not available") == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "tensorboard").exists()


def test_other_ranks_write_nothing(tmp_path):
    log = MetricsLog(tmp_path, enabled=False)
    log.write(1, "train", {"loss_d": 1.0})
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_line_is_cut_off_before_a_resumed_run_appends(tmp_path, capsys):
    """A full disk or a crash mid-write leaves a record without its newline: readers leave it
    out, and the next run's log cuts it off (with a warning) instead of appending onto it."""
    log = MetricsLog(tmp_path, tensorboard=False)
    log.write(1, "train", {"loss_d": 1.0})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "kind": "tr')
    assert [r["step"] for r in read_records(tmp_path)] == [1]
    log = MetricsLog(tmp_path, tensorboard=False)
    log.write(2, "train", {"loss_d": 2.0})
    log.close()
    assert [r["step"] for r in read_records(tmp_path)] == [1, 2]
    assert "ended in a torn record (23 bytes" in capsys.readouterr().err
