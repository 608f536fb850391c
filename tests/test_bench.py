"""`python -m accelerated.bench` on CPU: tiny shapes, a table, a JSON record; GPU rows marked."""

import json

import pytest
import torch

from accelerated.bench import attention
from accelerated.bench.__main__ import main


def test_spec_shapes_are_the_official_blocks_of_the_128_model():
    # SPEC section 6: at 64x64, head sizes 16/64 in G and 8/32 in D, N = 4096, N_k = 1024
    by_net = {(c.net, c.size): c for c in attention.cases([32, 64], [64])}
    assert (by_net["G", 64].d_qk, by_net["G", 64].d_v) == (16, 64)
    assert (by_net["D", 64].d_qk, by_net["D", 64].d_v) == (8, 32)
    assert (by_net["G", 64].n_queries, by_net["G", 64].n_keys) == (4096, 1024)
    assert (by_net["G", 32].channels, by_net["D", 32].channels) == (256, 128)


def test_attention_bench_runs_on_cpu_and_writes_json(tmp_path, capsys):
    code = main(["attention", "--device", "cpu", "--quick", "--reps", "1", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "need a CUDA GPU and CuPy" in out
    (path,) = tmp_path.glob("attention-*.json")
    record = json.loads(path.read_text())
    assert record["torch"] == torch.__version__ and "--quick" in record["command"]
    rows = {(r["net"], r["mode"], r["impl"]): r for r in record["rows"]}
    for net in ("G", "D"):
        for mode in attention.MODES:
            assert rows[net, mode, "naive"]["status"] == "ok"
            assert rows[net, mode, "naive"]["ms"] > 0
            assert rows[net, mode, "sdpa-math"]["status"] == "ok"
            assert rows[net, mode, "cupy"]["status"] == "not run"


def test_implementations_agree_on_cpu():
    q, k, v = torch.randn(2, 16, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 32)
    impls = attention.implementations(torch.device("cpu"))
    torch.testing.assert_close(impls["sdpa-math"](q, k, v), impls["naive"](q, k, v))


def test_no_cuda_is_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["attention", "--out", "unused"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cpu" in err


@pytest.mark.slow
def test_sn_bench_runs_on_cpu(tmp_path):
    assert main(["sn", "--device", "cpu", "--quick", "--reps", "1", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("sn-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert rows[0]["impl"] == "torch" and rows[0]["sn_layers"] > 10
