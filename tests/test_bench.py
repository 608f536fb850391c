"""`python -m accelerated.bench` on CPU: tiny sizes, a table, a JSON record; GPU rows marked;
the FLOP count against hand formulas and the cost model."""

import dataclasses
import json
import os
import sys

import kernel_stand_ins as stand_ins
import pytest
import torch

from accelerated import models
from accelerated.bench import attention, flops, gpu_check, peak, step
from accelerated.bench.__main__ import main
from accelerated.kernels import attention as kernel_attention


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


# -- the training step ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def step_record(tmp_path_factory):
    """One `bench step --quick` run on the CPU (tiny preset), shared by the tests below."""
    out = tmp_path_factory.mktemp("step")
    argv = ["step", "--device", "cpu", "--quick", "--iters", "1", "--out", str(out)]
    assert main(argv) == 0
    (path,) = out.glob("step-*.json")
    return path, json.loads(path.read_text())


def test_step_bench_lists_every_row_and_measures_the_cpu_ones(step_record):
    _, record = step_record
    rows = {r["row"]: r for r in record["rows"]}
    assert list(rows) == list(step.ROWS) + list(step.NOT_IN_TRAINING)
    assert record["preset"] == "tiny" and record["torch"] == torch.__version__
    base = rows["baseline"]
    assert base["status"] == "ok" and base["it_s"] > 0 and base["x_baseline"] == 1
    assert base["levers"] == dataclasses.asdict(step.BASELINE)
    assert base["images_s"] == pytest.approx(base["it_s"] * record["batch"])
    assert base["mfu"] is None and record["peak_bf16_tflops"] is None  # no bf16 peak on a CPU
    assert rows["fused Adam"]["status"] == "ok"
    assert rows["SDPA attention"]["status"] == "ok"  # a route that can be forced on a CPU
    assert rows["SDPA attention"]["attention_path"] == "sdpa"
    for name in ("bf16 autocast", "channels-last", "compile + CUDA graphs"):
        assert rows[name]["status"] == "not run" and "needs CUDA" in rows[name]["note"]
    kernels = rows["CuPy kernels"]
    assert kernels["status"] == "not run" and "need CUDA" in kernels["note"]
    assert "--quick" in rows["torch.compile"]["note"]
    # the fast path runs with what acts on a CPU and says what stayed off
    assert rows["fast path"]["status"] == "ok" and "bf16" in rows["fast path"]["note"]
    assert rows["batched SN kernel"]["status"] == "not run"
    assert rows["R1 penalty"]["status"] == rows["lazy R1 (every 4)"]["status"] == "ok"
    assert rows["lazy R1 (every 4)"]["levers"]["r1_every"] == 4
    assert base["iterations"] == 1 and base["ms_mean"] == base["ms"]  # one timing: mean = median
    assert record["flops_per_iteration"] == record["flops_per_image"] * record["batch"]


def test_a_failing_row_does_not_stop_the_others(monkeypatch):
    """Bug: a row failing with anything but RuntimeError or ValueError (an Inductor assertion,
    say) ended the whole run."""
    prepare = step.prepare

    def broken(preset, batch, levers, device):
        if levers.fused_adam:
            raise AssertionError("expected size 2==2, stride 512==64")
        return prepare(preset, batch, levers, device)

    monkeypatch.setattr(step, "prepare", broken)
    finished = []
    rows = step.benchmark("tiny", 4, torch.device("cpu"), 1, 1, True, 1, None,
                          ["baseline", "fused Adam"], finished.append)
    by_name = {r["row"]: r for r in rows}
    assert by_name["fused Adam"]["status"] == "failed: AssertionError: expected size 2==2, " \
        "stride 512==64"
    assert by_name["baseline"]["status"] == "ok"
    assert by_name["torch.compile"]["note"] == "left out (--rows)"
    assert [r["row"] for r in finished] == ["baseline", "fused Adam"]


def test_results_are_written_as_each_row_finishes(tmp_path, monkeypatch):
    """Bug: results were written only at the end, so a crash mid-run kept nothing."""
    run_case, calls = attention.run_case, []

    def crash_on_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_case(*args)

    monkeypatch.setattr(attention, "run_case", crash_on_third)
    # Ctrl-C: one line, status 130, and the rows measured so far are kept
    assert main(["attention", "--device", "cpu", "--quick", "--reps", "1", "--out",
                 str(tmp_path)]) == 130
    (path,) = tmp_path.glob("attention-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert [r["impl"] for r in rows] == ["naive", "sdpa-math"]
    assert not list(tmp_path.glob("*.partial"))


def test_gpu_check_dry_run_checks_the_plan(tmp_path, capsys):
    assert main(["gpu-check", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for stage in ("GPU tests", "training step", "attention", "spectral norm"):
        assert stage in out
    assert "plan checked" in out and not list(tmp_path.iterdir())
    plan = gpu_check.stages(tmp_path)
    assert sum(s.budget_s for s in plan) <= 8 * 60
    step_argv = next(s.argv for s in plan if s.name == "training step")
    assert "imagenet128" in step_argv and "compile + CUDA graphs" not in step_argv


def test_gpu_check_dry_run_reports_a_broken_plan(tmp_path, capsys, monkeypatch):
    stages = gpu_check.stages

    def broken(out):
        plan = stages(out)
        bad = gpu_check.Stage("training step", 500, (*plan[1].argv, "--rows", "turbo"), True)
        return [plan[0], bad]

    monkeypatch.setattr(gpu_check, "stages", broken)
    assert main(["gpu-check", "--dry-run", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "over 480 s" in err and "no row 'turbo'" in err


def test_fused_adam_lever_is_the_training_setting():
    from accelerated.bench.trainer import config, synthetic_gan

    for fused in (True, False):
        cfg = config("tiny", overrides=step.Levers(fused_adam=fused).settings())
        gan = synthetic_gan(cfg, torch.device("cpu"), levers_anywhere=True)
        assert bool(gan.opt_D.defaults["fused"]) == bool(gan.opt_G.defaults["fused"]) == fused
        assert [p for g in gan.opt_D.param_groups for p in g["params"]] == list(
            gan.D.parameters())
        assert gan.opt_D.defaults["lr"] == cfg.optim.lr_d


def test_peak_table_picks_the_part_by_device_name():
    assert peak.bf16_peak("NVIDIA H100 80GB HBM3") == (989.0, "H100 SXM")
    assert peak.bf16_peak("NVIDIA H100 PCIe") == (756.0, "H100 PCIe")
    assert peak.bf16_peak("NVIDIA H100 NVL") == (835.0, "H100 NVL")
    assert peak.bf16_peak("NVIDIA H200") == (989.0, "H200 SXM")
    assert peak.bf16_peak("NVIDIA A100-SXM4-80GB") == (312.0, "A100")
    assert peak.bf16_peak("Tesla T4") is None


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["step", "--batch", "0"], 2, "positive integer"),
        (["step", "--iters", "x"], 2, "positive integer"),
        (["step", "--no-such-flag"], 2, "unrecognized"),
        (["nothing"], 2, "invalid choice"),
        (["step", "--device", "tpu"], 1, "--device must be cuda or cpu"),
        (["step", "--device", "cpu", "--preset", "nope"], 1, "unknown preset"),
        (["step", "--device", "cpu", "--peak-tflops", "100"], 1, "--peak-tflops"),
        (["step", "--device", "cpu", "--rows", "turbo"], 1, "--rows: no row named 'turbo'"),
        (["gpu-check", "--device", "cpu"], 1, "--dry-run"),
        (["data", "--workers", "-1"], 1, "--workers"),
        (["eval", "--device", "cpu", "--metrics", "inception", "--inception-weights",
          "/no/such/file"], 1, "does not exist"),
        (["eval", "--device", "cpu", "--inception-weights", "w.pth"], 1, "only applies with"),
    ],
)
def test_bad_command_lines_are_one_line_errors(argv, code, says, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err
    assert not list(tmp_path.iterdir())  # nothing written


# -- FLOP counts ---------------------------------------------------------------------------------


def test_flop_counter_matches_hand_formulas_for_conv_linear_and_attention():
    from accelerated.layers import SelfAttention, sn_conv2d, sn_linear
    from accelerated.ops import attention_dims

    B, C, H, W = 2, 16, 8, 8
    x = torch.randn(B, C, H, W)
    conv = sn_conv2d(C, 24, 3, padding=1)
    # 2 FLOPs per multiply-add: 2 * B * C_out * H * W * C_in * k * k
    assert flops.count(lambda: conv(x)) == 2 * B * 24 * H * W * C * 3 * 3
    linear = sn_linear(40, 7)
    assert flops.count(lambda: linear(torch.randn(B, 40))) == 2 * B * 40 * 7
    layer = SelfAttention(C)  # official: q/k C/8, v C/2, keys and values 2x2 max-pooled
    c_qk, c_v, pool = attention_dims(C, "official")
    N = H * W
    N_k = N // 4 if pool else N
    expected = (2 * B * N * C * (2 * c_qk + c_v)  # 1x1 maps f, g, h
                + 2 * B * N * N_k * (c_qk + c_v)  # s = q k^T and beta v
                + 2 * B * N * c_v * C)  # output map v
    assert flops.count(lambda: layer(x)) == expected
    # forward + backward of a convolution: input and weight gradients cost a forward each
    xg = x.clone().requires_grad_()
    assert flops.count(lambda: conv(xg).sum().backward()) == 3 * 2 * B * 24 * H * W * C * 9


def hand_count(module, *inputs) -> int:
    """Forward FLOPs of a model from its layers' shapes: conv, linear and attention formulas."""
    from accelerated.layers import SelfAttention
    from accelerated.ops import attention_dims

    total = 0

    def hook(layer, args, out):
        nonlocal total
        if isinstance(layer, SelfAttention):
            B, C, H, W = args[0].shape
            c_qk, c_v, pool = attention_dims(C, layer.variant)
            N = H * W
            N_k = N // 4 if pool else N
            total += 2 * B * N * (C * (2 * c_qk + c_v) + N_k * (c_qk + c_v) + c_v * C)
        elif isinstance(layer, torch.nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * out.numel() * layer.in_channels * k
        elif isinstance(layer, torch.nn.Linear):
            total += 2 * out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def test_forward_flops_of_the_128_model_match_per_layer_formulas():
    from accelerated.bench.trainer import config

    model = config("imagenet128").model
    F_G, F_D = flops.forward_flops(model)
    with torch.device("meta"):
        G, D = models.build_models(model)
        y = torch.zeros(1, dtype=torch.long)
        assert hand_count(G, torch.zeros(1, model.z_dim), y) == F_G
        assert hand_count(D, torch.zeros(1, 3, 128, 128), y) == F_D


def cost_model(preset: str) -> int:
    """(4 F_G + 8 F_D) per image of batch, from the counted forward FLOPs of G and D."""
    from accelerated.bench.trainer import config

    F_G, F_D = flops.forward_flops(config(preset).model)
    return 4 * F_G + 8 * F_D


def test_iteration_flops_are_linear_in_the_batch_and_near_the_cost_model():
    one = flops.iteration_flops("tiny", 1)
    assert flops.iteration_flops("tiny", 3) == 3 * one
    # The step skips two input gradients that the cost model counts (D's first convolution's in
    # the D step, G's first linear layer's in the G step): a little below it, most on a narrow
    # model (tiny: d_ch = 4) where the first layers weigh most.
    assert -0.02 < one / cost_model("tiny") - 1 < 0


@pytest.mark.slow
def test_cost_model_holds_for_the_128_model():
    # docs/performance.md quotes the counted 144.2 GFLOP per image of batch (36.9 TFLOP at 256)
    assert -0.002 < flops.iteration_flops("imagenet128", 1) / cost_model("imagenet128") - 1 < 0


def test_flops_bench_converts_the_count_to_iterations_at_an_mfu(tmp_path):
    assert main(["flops", "--preset", "tiny", "--mfu", "0.5", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("flops-*.json")
    record = json.loads(path.read_text())
    assert record["flops_per_iteration"] == record["flops_per_image"] * record["batch"]
    assert [r["part"] for r in record["rows"]] == [part for _, _, part in peak.PEAKS]
    for r in record["rows"]:
        # it/s x FLOPs per iteration = half the peak
        assert r["it_s"] * record["flops_per_iteration"] == pytest.approx(
            0.5 * r["peak_bf16_tflops"] * 1e12)


# -- data loading and evaluation -----------------------------------------------------------------


def test_data_bench_compares_the_loader_with_the_step(step_record, tmp_path, capsys):
    path, record = step_record
    argv = ["data", "--quick", "--preset", "tiny", "--step-json", str(path), "--out",
            str(tmp_path)]
    assert main(argv) == 0
    assert "appetite" in capsys.readouterr().out
    (out,) = tmp_path.glob("data-*.json")
    result = json.loads(out.read_text())
    assert {r["way"] for r in result["rows"]} >= {"raw memmap, slices", "DataLoader, workers=0"}
    base = next(r for r in record["rows"] if r["row"] == "baseline")
    eats = {a["row"]: a for a in result["appetite"]}
    assert eats["baseline"]["images_s"] == pytest.approx(base["it_s"] * record["batch"])
    loader = next(r["images_s"] for r in result["rows"] if r["way"] == "DataLoader, workers=0")
    assert eats["baseline"]["headroom"] == pytest.approx(loader / eats["baseline"]["images_s"])


@pytest.mark.filterwarnings("ignore:64 samples of 192-dimensional features")  # few, on purpose
def test_eval_bench_times_generation_and_features(tmp_path):
    argv = ["eval", "--device", "cpu", "--quick", "--num-samples", "64", "--batch", "32",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("eval-*.json")
    record = json.loads(path.read_text())
    parts = {r["part"]: r for r in record["rows"]}
    assert record["num_samples"] == 64 and record["feature_network"].startswith("random-conv")
    assert parts["generation"]["seconds"] > 0
    assert parts["total"]["seconds"] == pytest.approx(
        parts["generation + features"]["seconds"] + parts["scores (FID, KID)"]["seconds"])


# -- rows that meant to time a kernel ------------------------------------------------------------


@pytest.fixture
def kernels_fail_to_compile(monkeypatch):
    """The attention ops run their CUDA-side code on the CPU with a kernel getter that raises,
    as NVRTC does when a kernel does not compile: every call falls back to PyTorch."""

    def no_compiler(*args):
        raise RuntimeError("compiling attention.cu failed: cuda_bf16.h: No such file")

    monkeypatch.setattr(kernel_attention, "get_kernel", no_compiler)
    monkeypatch.setattr(kernel_attention, "_compile_failures", {})
    stand_ins.register_own_attention_ops()
    yield
    stand_ins.register_ops()


def kernel_rows() -> list[dict]:
    """`bench attention`'s `cupy` rows on the CPU: a small block, forward and forward+backward."""
    case = attention.Case("G", 4, 2, 16, d_qk=2, d_v=8, n_queries=16, n_keys=4)
    kernel, cpu = kernel_attention.fused_attention, torch.device("cpu")
    return [{"impl": "cupy", **attention.run_case(case, kernel, mode, cpu, torch.float32, 1)}
            for mode in attention.MODES]


def test_an_attention_row_whose_kernel_did_not_compile_is_a_fallback(kernels_fail_to_compile):
    """Bug: where the kernel did not compile, the op ran its formulas in PyTorch (the bench
    silenced the warning) and the `cupy` row said `ok`, timing PyTorch."""
    rows = kernel_rows()
    assert [r["status"] for r in rows] == ["fallback"] * 2, rows
    for row in rows:
        assert "attention_forward<float, 8, 8> did not compile" in row["note"]
        assert ("attention_backward_dkdv<float, 8, 8>" in row["note"]) == (
            row["mode"] == "forward+backward")
    assert "fallback" in attention.format_table(rows)


def test_an_attention_row_whose_kernel_ran_is_ok():
    stand_ins.register_ops()  # the kernels' stand-ins: the kernel route runs, no fallback
    assert [r["status"] for r in kernel_rows()] == ["ok"] * 2


def test_a_step_row_whose_kernel_did_not_run_is_a_fallback(stand_in_kernels,
                                                            kernels_fail_to_compile):
    """The same bug in `bench step`'s "CuPy kernels" row (run here on the CPU stand-ins)."""
    cpu = torch.device("cpu")
    plan = step.Plan("CuPy kernels", step.ROWS["CuPy kernels"], "", [])
    step.run_group([plan], "tiny", 4, cpu, 1, 1)
    row = step.result(plan, "tiny", 4, cpu, 1, None, None)
    assert row["status"] == "fallback" and "attention_forward<float" in row["note"], row
    assert "PyTorch ran" in step.format_table([row])


def test_a_step_row_whose_kernels_ran_is_ok(stand_in_kernels):
    cpu = torch.device("cpu")
    plan = step.Plan("CuPy kernels", step.ROWS["CuPy kernels"], "", [])
    step.run_group([plan], "tiny", 4, cpu, 1, 1)
    assert step.result(plan, "tiny", 4, cpu, 1, None, None)["status"] == "ok"


def test_the_step_bench_sets_cudnn_up_as_training_does(monkeypatch):
    """Bug: training turns `cudnn.benchmark` on, the bench's GAN did not, so `bench step` timed
    other convolution algorithms than training runs."""
    from accelerated.bench import trainer

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(trainer, "GANStep", lambda *args: args)  # no CUDA to build it on here
    trainer.synthetic_gan(trainer.config("tiny"), torch.device("cuda"))
    assert torch.backends.cudnn.benchmark


# -- what the step rows time ---------------------------------------------------------------------


def test_gpu_check_runs_the_step_rows_most_important_first():
    """Bug: the compiled float32 row ran before the fast path inside one time-limited stage with
    a cold Inductor cache, so a budget cut dropped the row that matters most."""
    rows = gpu_check.STEP_ROWS
    assert rows[:2] == ("baseline", "fast path") and rows[-1] == "torch.compile"
    assert set(step.ROWS) - set(rows) == {"compile + CUDA graphs", "fast path + CUDA graphs",
                                          "R1 penalty", "lazy R1 (every 4)"}
    argv = next(s.argv for s in gpu_check.stages(gpu_check.ROOT) if s.name == "training step")
    start = argv.index("--rows") + 1
    assert argv[start:start + len(rows)] == rows


def test_step_rows_run_in_the_order_asked_baseline_first(monkeypatch):
    monkeypatch.setattr(step, "prepare", lambda *args: (None, lambda: None))
    ran = []
    rows = step.benchmark("tiny", 4, torch.device("cpu"), 1, 1, True, 1, None,
                          ["fast path", "fused Adam", "baseline"], lambda r: ran.append(r["row"]))
    assert ran == ["baseline", "fast path", "fused Adam"]
    assert [r["row"] for r in rows[:3]] == ran and len(rows) == len(step.ROWS) + 1


def test_a_rows_first_iteration_is_timed_apart_from_its_steps(monkeypatch):
    """The compile time of a compiled row (its first iteration) is recorded on its own, never
    mixed into its step times. A stand-in step on a stand-in clock: 30 s, then 0.25 s each."""
    import time

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def iteration():
        clock[0] += 0.25 if clock[0] else 30.0

    monkeypatch.setattr(step, "prepare", lambda *args: (None, iteration))
    (row, *_) = step.benchmark("tiny", 4, torch.device("cpu"), 3, 2, False, 1, None,
                               ["torch.compile"])
    assert row["row"] == "torch.compile" and row["status"] == "ok"
    assert row["first_iteration_s"] == 30.0
    assert row["ms"] == 250.0 and row["iterations"] == 3
    assert "30.0" in step.format_table([row])


def host_reads_per_iteration(levers: step.Levers) -> int:
    """How often one iteration of the row reads a tensor on the host in the project's code
    (`bool`, `item`, `tolist`: on a GPU each one waits for it; PyTorch's default Adam reads its
    step counts too, but those stay on the CPU), after a first iteration built the state."""
    _, iteration = step.prepare("tiny", 4, levers, torch.device("cpu"))
    iteration()
    reads = []

    def counted(read):
        def count(self):
            caller = sys._getframe(1).f_code.co_filename
            reads.extend([caller] if f"{os.sep}accelerated{os.sep}" in caller else [])
            return read(self)

        return count

    with pytest.MonkeyPatch.context() as patch:
        for name in ("__bool__", "item", "tolist"):
            patch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
        iteration()
    return len(reads)


def test_the_fused_adam_row_and_its_waits_are_apart():
    """Bug: without fused Adam the step waits on the host for each update's finite flag (one D
    update and one G update here), with it never, so the "fused Adam" row's gain included two
    fewer waits per iteration. The row with the default's waits isolates them."""
    baseline = host_reads_per_iteration(step.BASELINE)
    fused = host_reads_per_iteration(step.ROWS["fused Adam"])
    waits = host_reads_per_iteration(step.ROWS["fused Adam + host waits"])
    assert fused == baseline - 2 and waits == baseline
    assert step.ROWS["fused Adam + host waits"].settings() == step.ROWS["fused Adam"].settings()


def test_a_benchmark_records_the_attributes_of_the_kernels_it_compiled(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from accelerated.kernels import cupy_module

    attributes = {"num_regs": 40, "shared_size_bytes": 0, "max_threads_per_block": 1024}
    stand_in = SimpleNamespace(attributes=attributes)  # a compiled kernel, as the record reads it
    monkeypatch.setattr(cupy_module, "_compiled", {"power_iteration_batched": stand_in})
    assert main(["sn", "--device", "cpu", "--quick", "--reps", "1", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("sn-*.json")
    assert json.loads(path.read_text())["kernels"] == {"power_iteration_batched": attributes}
