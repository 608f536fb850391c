"""`python -m accelerated.bench gpu-check` on a CPU: its record, with a quick CPU benchmark standing
in for a GPU stage (the stages themselves need a GPU; `--dry-run` is in tests/test_bench.py)."""

import argparse
import json
from pathlib import Path

import torch

from accelerated.bench import gpu_check


def quick_stage(out: Path) -> list[gpu_check.Stage]:
    """One stage, as the real ones are built from `out`: a CPU attention bench."""
    argv = ("accelerated.bench", "attention", "--device", "cpu", "--quick", "--sizes", "8",
            "--batches", "2", "--reps", "1", "--out", str(out))
    return [gpu_check.Stage("attention", 300, argv, True)]


def run_check(monkeypatch, out) -> dict:
    """gpu-check's `main` with the quick stage, as if on a GPU; its record."""
    monkeypatch.setattr(gpu_check, "stages", quick_stage)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "environment", lambda device: {"device": "Stand-in GPU"})
    args = argparse.Namespace(out=out, dry_run=False, command="gpu-check")
    assert gpu_check.main(args) == 0
    (path,) = Path(out).resolve().glob("gpu-check-stand-in-gpu-*.json")
    return json.loads(path.read_text())


def test_a_relative_out_is_one_folder_for_the_check_and_its_stages(tmp_path, monkeypatch):
    """Bug: the stages ran in the repository root with the relative --out, while the check
    looked for their files in its own working directory, so its record said `results: []`."""
    monkeypatch.chdir(tmp_path)
    record = run_check(monkeypatch, Path("gpu-check-out"))
    (row,) = record["rows"]
    assert row["status"] == "ok", row["log_tail"]
    (written,) = row["results"]
    assert Path(written).parent == tmp_path / "gpu-check-out"
    assert json.loads(Path(written).read_text())["benchmark"] == "attention"
    assert not (gpu_check.ROOT / "gpu-check-out").exists()


def test_each_bench_stage_records_the_attributes_of_its_kernels(tmp_path, monkeypatch):
    """The attributes each benchmark wrote (`kernels`: registers, shared memory, ... on the
    GPU) come into the check's record, stage by stage; a file cut mid-write says so."""
    record = run_check(monkeypatch, tmp_path)
    assert record["rows"][0]["kernels"] == {}  # the CPU compiled no kernel
    attributes = {"num_regs": 255, "local_size_bytes": 448}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"kernels": {"attention_backward_dkdv<float, 32, 128>":
                                             attributes}}))
    second.write_text('{"kernels": {"cut')
    found = gpu_check.kernels_of([first, second])
    assert found["attention_backward_dkdv<float, 32, 128>"] == attributes
    assert "error" in found["(unreadable b.json)"]
