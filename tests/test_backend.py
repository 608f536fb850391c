"""accelerated.backend: the one place that picks a CuPy kernel or plain PyTorch.

No GPU is needed: where a test needs "CUDA tensors and CuPy present", it replaces the two device
checks (`all_cuda`, `cupy_usable`) and leaves the registry logic itself to run.
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
def fake_gpu(monkeypatch, registry):
    """Pretend every tensor is on CUDA and CuPy imports."""
    monkeypatch.setattr(backend, "all_cuda", lambda tensors: True)
    monkeypatch.setattr(backend, "cupy_usable", lambda: True)
    return registry


def fake_kernel(*args, **kwargs):
    return ("kernel", args, kwargs)


def test_cpu_tensors_get_no_kernel(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: True)
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
    assert ops.hinge_loss_generator(torch.tensor([1.0, 3.0])).item() == -2.0


def test_registered_kernel_runs_for_cuda_tensors(fake_gpu):
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    d_fake = torch.tensor([1.0, 3.0])
    tag, args, _ = ops.hinge_loss_generator(d_fake)
    assert tag == "kernel" and args[0] is d_fake


def test_attention_kernel_replaces_the_softmax_core(fake_gpu):
    """The kernel gets q = g(x), k = f(x), v = h(x) as (B, N, d) tokens and returns o's sum."""
    calls = []

    def core(q, k, v):
        calls.append((q.shape, k.shape, v.shape))
        return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v

    backend.register_kernel("self_attention", core)
    x = torch.randn(2, 16, 4, 6, dtype=torch.float32)
    c_qk, c_v, pool = ops.attention_dims(16, "official")
    weights = [torch.randn(c_qk, 16), torch.randn(c_qk, 16), torch.randn(c_v, 16)]
    weights.append(torch.randn(16, c_v))
    y = ops.self_attention(x, *weights, 0.5, pool=pool)
    assert calls == [((2, 24, c_qk), (2, 6, c_qk), (2, 6, c_v))]
    with backend.force_backend("torch"):
        torch.testing.assert_close(y, ops.self_attention(x, *weights, 0.5, pool=pool))
    ops.self_attention(x, *weights, 0.5, pool=pool, return_attention=True)
    assert len(calls) == 1  # beta asked for: no kernel returns it, the readable path runs


def test_kernels_only_get_the_dtypes_they_take(fake_gpu):
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    d_fake = torch.zeros(3, dtype=torch.float64)
    assert backend.kernel_for("hinge_loss_generator", d_fake) is None
    with backend.force_backend("cupy"), pytest.raises(RuntimeError, match=r"got torch\.float64"):
        backend.kernel_for("hinge_loss_generator", d_fake)


def test_power_iteration_kernel_iterates_a_batch_of_one(fake_gpu):
    calls = []

    def batched(W, u, n_steps, eps):
        calls.append((W.shape, u.shape, n_steps, eps))
        return torch.ones(1), u, torch.ones(W.shape[0], W.shape[2])

    backend.register_kernel("power_iteration_batched", batched)
    sigma, u, v = ops.power_iteration(torch.randn(4, 2, 3), torch.randn(4), n_steps=2, eps=1e-6)
    assert calls == [((1, 4, 6), (1, 4), 2, 1e-6)]
    assert u.shape == (4,) and v.shape == (6,) and sigma.shape == ()


def test_forcing_torch_skips_registered_kernels(fake_gpu):
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    with backend.force_backend("torch"):
        assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
        assert ops.hinge_loss_generator(torch.tensor([2.0])).item() == -2.0
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is fake_kernel


def test_environment_variable_forces_torch(fake_gpu, monkeypatch):
    backend.register_kernel("hinge_loss_generator", fake_kernel)
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is None
    with backend.force_backend(None):  # the context manager wins over the variable
        assert backend.kernel_for("hinge_loss_generator", torch.zeros(3)) is fake_kernel


def test_forcing_cupy_without_a_gpu_raises(registry, monkeypatch):
    monkeypatch.setattr(backend, "cupy_usable", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA device and CuPy"):
        with backend.force_backend("cupy"):
            pass
    monkeypatch.setenv(backend.ENV_VAR, "cupy")
    with pytest.raises(RuntimeError, match="needs a CUDA device and CuPy"):
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


def test_forcing_cupy_without_a_registered_kernel_raises(fake_gpu):
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


def test_all_cuda_on_real_tensors():
    assert not backend.all_cuda([torch.zeros(1), 2.0])
    assert not backend.all_cuda([1.0])  # no tensor at all: nothing to run a kernel on


@pytest.mark.gpu
def test_all_cuda_on_gpu_tensors():
    assert backend.all_cuda([torch.zeros(1, device="cuda"), 0.5])
    assert not backend.all_cuda([torch.zeros(1, device="cuda"), torch.zeros(1)])


def test_generator_and_discriminator_compile_into_one_graph_each():
    """The backend choice in every op is traced, not a graph break (ContextVar.get was one)."""
    model = C.build("tiny").model
    G, D = build_models(model)
    z, y = torch.randn(2, model.z_dim), torch.tensor([0, 1])
    for net, args in ((G, (z, y)), (D, (torch.randn(2, 3, 16, 16), y))):
        explained = torch._dynamo.explain(net)(*args)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
