"""accelerated.backend: the one place that picks a CuPy kernel or plain PyTorch.

No GPU is needed: kernels registered for CPU tensors (`device_type="cpu"`) run the registry logic
itself on a CPU; where a test needs "CuPy present", it replaces `cupy_usable`.
"""

import pytest
import torch

from accelerated import backend, ops
from accelerated import config as C
from accelerated.models import build_models


@pytest.fixture
def registry(monkeypatch):
    """A fresh, empty kernel registry (no import of accelerated.kernels) and no SAGAN_BACKEND."""
    monkeypatch.setattr(backend, "_kernels", {})
    monkeypatch.setattr(backend, "_kernels_loaded", True)
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    return backend._kernels


@pytest.fixture
def cpu_kernels(registry):
    """Register kernels for CPU tensors: `cpu_kernels(op_name, fn)`."""

    def register(op_name, fn, **kwargs):
        backend.register_kernel(op_name, fn, device_type="cpu", **kwargs)

    return register


def fake_kernel(*args, **kwargs):
    return ("kernel", args, kwargs)


def test_cpu_tensors_get_no_kernel(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: True)
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
    assert ops.hinge_loss_generator(torch.tensor([1.0, 3.0])).item() == -2.0


def test_a_registered_kernel_runs_only_where_chosen(cpu_kernels):
    """No kernel is measured faster than PyTorch yet: the automatic choice runs none."""
    cpu_kernels("hinge_loss_generator", fake_kernel)
    d_fake = torch.tensor([1.0, 3.0])
    assert ops.hinge_loss_generator(d_fake).item() == -2.0
    with backend.force_backend("cupy"):
        tag, args, _ = ops.hinge_loss_generator(d_fake)
    assert tag == "kernel" and args[0] is d_fake


def test_attention_kernel_replaces_the_softmax_core(cpu_kernels):
    """The kernel gets q = g(x), k = f(x), v = h(x) as (B, N, d) tokens and returns o's sum."""
    calls = []

    def core(q, k, v):
        calls.append((q.shape, k.shape, v.shape))
        return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v

    cpu_kernels("self_attention", core)
    x = torch.randn(2, 16, 4, 6, dtype=torch.float32)
    c_qk, c_v, pool = ops.attention_dims(16, "official")
    weights = [torch.randn(c_qk, 16), torch.randn(c_qk, 16), torch.randn(c_v, 16)]
    weights.append(torch.randn(16, c_v))
    with backend.force_backend("cupy"):
        y = ops.self_attention(x, *weights, 0.5, pool=pool)
        assert calls == [((2, 24, c_qk), (2, 6, c_qk), (2, 6, c_v))]
        ops.self_attention(x, *weights, 0.5, pool=pool, return_attention=True)
        assert len(calls) == 1  # beta asked for: no kernel returns it, the readable path runs
    torch.testing.assert_close(y, ops.self_attention(x, *weights, 0.5, pool=pool))


def test_kernels_only_get_the_dtypes_they_take(cpu_kernels):
    cpu_kernels("hinge_loss_generator", fake_kernel)
    d_fake = torch.zeros(3, dtype=torch.float64)
    with backend.force_backend("cupy"), pytest.raises(RuntimeError, match=r"got torch\.float64"):
        backend.kernel_for("hinge_loss_generator", d_fake)


def test_power_iteration_kernel_iterates_a_batch_of_one(cpu_kernels):
    calls = []

    def batched(W, u, n_steps, eps):
        calls.append((W.shape, u.shape, n_steps, eps))
        return torch.ones(1), u, torch.ones(W.shape[0], W.shape[2])

    cpu_kernels("power_iteration_batched", batched)
    with backend.force_backend("cupy"):
        sigma, u, v = ops.power_iteration(torch.randn(4, 2, 3), torch.randn(4), 2, eps=1e-6)
    assert calls == [((1, 4, 6), (1, 4), 2, 1e-6)]
    assert u.shape == (4,) and v.shape == (6,) and sigma.shape == ()


def test_forcing_torch_skips_registered_kernels(cpu_kernels):
    cpu_kernels("hinge_loss_generator", fake_kernel)
    with backend.force_backend("cupy"):
        with backend.force_backend("torch"):
            assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
            assert ops.hinge_loss_generator(torch.tensor([2.0])).item() == -2.0
        assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is fake_kernel


def test_environment_variable_chooses_the_backend(cpu_kernels, monkeypatch):
    cpu_kernels("hinge_loss_generator", fake_kernel)
    monkeypatch.setenv(backend.ENV_VAR, "cupy")
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is fake_kernel
    with backend.force_backend(None):  # the context manager wins over the variable
        assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None


def test_inputs_a_kernel_does_not_take_fall_back_with_one_warning(cpu_kernels, monkeypatch):
    monkeypatch.setattr(backend, "_warned", set())
    cpu_kernels("hinge_loss_generator", fake_kernel, unsupported=lambda d: "too many logits")
    with backend.force_backend("cupy"), pytest.warns(RuntimeWarning, match="too many logits"):
        assert ops.hinge_loss_generator(torch.tensor([2.0])).item() == -2.0
        assert ops.hinge_loss_generator(torch.tensor([4.0])).item() == -4.0  # warned once


def test_forcing_cupy_without_a_gpu_raises(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA device and CuPy"):
        with backend.force_backend("cupy"):
            pass
    monkeypatch.setenv(backend.ENV_VAR, "cupy")
    with pytest.raises(RuntimeError, match=r"takes CUDA tensors .* on cpu"):
        ops.hinge_loss_generator(torch.zeros(2))


@pytest.mark.skipif(backend.cupy_usable(), reason="CuPy and a GPU are present here")
def test_forcing_cupy_on_this_machine_raises(registry):
    with pytest.raises(RuntimeError, match="backend 'cupy' was forced"):
        with backend.force_backend("cupy"):
            pass


def test_forcing_cupy_on_cpu_tensors_raises(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: True)
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    with backend.force_backend("cupy"), pytest.raises(RuntimeError, match=r"float32 on cpu"):
        backend.kernel_for("hinge_loss_generator", torch.zeros(3))


def test_forcing_cupy_without_a_registered_kernel_raises(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: True)
    monkeypatch.setattr(backend, "device_type", lambda tensors: "cuda")
    with (
        backend.force_backend("cupy"),
        pytest.raises(RuntimeError, match="no kernel is registered"),
    ):
        backend.kernel_for("self_attention", torch.zeros(3))


def test_unknown_names_raise_value_errors(registry, monkeypatch):
    with pytest.raises(ValueError, match="unknown op 'attention'"):
        backend.register_kernel("attention", fake_kernel)
    with pytest.raises(ValueError, match="must be callable"):
        backend.register_kernel("self_attention", 3)
    with pytest.raises(ValueError, match="unknown op"):
        backend.kernel_for("softmax", torch.zeros(1))
    with pytest.raises(ValueError, match="unknown backend 'triton'"):
        with backend.force_backend("triton"):
            pass
    monkeypatch.setenv(backend.ENV_VAR, "numpy")
    with pytest.raises(ValueError, match="SAGAN_BACKEND='numpy' is not a backend"):
        backend.kernel_for("self_attention", torch.zeros(1))


def test_device_type_of_real_tensors():
    assert backend.device_type([torch.zeros(1), 2.0]) == "cpu"
    assert backend.device_type([1.0]) is None  # no tensor at all: nothing to run a kernel on


@pytest.mark.gpu
def test_device_type_of_gpu_tensors():
    assert backend.device_type([torch.zeros(1, device="cuda"), 0.5]) == "cuda"
    assert backend.device_type([torch.zeros(1, device="cuda"), torch.zeros(1)]) is None


def test_generator_and_discriminator_compile_into_one_graph_each():
    """The backend choice in every op is traced, not a graph break (ContextVar.get was one)."""
    model = C.build("tiny").model
    G, D = build_models(model)
    z, y = torch.randn(2, model.z_dim), torch.tensor([0, 1])
    for net, args in ((G, (z, y)), (D, (torch.randn(2, 3, 16, 16), y))):
        explained = torch._dynamo.explain(net)(*args)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
