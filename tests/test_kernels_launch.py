"""What the kernel wrappers hand CuPy and what they record of it, on a CPU: the ops' own code with
stand-ins for the compiled kernel and its launch (the kernels themselves run in
tests/test_kernels_on_cpu.py and, on a GPU, tests/test_kernels_gpu.py)."""

from types import SimpleNamespace

import torch

from accelerated.kernels import cupy_module, power_iteration


def launches(monkeypatch) -> list[tuple]:
    """Stand-ins for `get_kernel` and `launch` in the power-iteration module; the list of the
    arguments of every launch."""
    seen = []
    monkeypatch.setattr(power_iteration, "get_kernel", lambda *args: "stand-in kernel")
    monkeypatch.setattr(power_iteration, "launch", lambda kernel, grid, block, *args:
                        seen.append(args))
    return seen


def test_power_iteration_tables_are_built_once_for_the_same_weights(monkeypatch):
    """Bug: every call built the addresses and both offset tables on the host and copied each to
    the device (three waits on pageable memory per call, on every SN step)."""
    seen = launches(monkeypatch)
    weights = [torch.randn(3, 4), torch.randn(2, 5)]
    u = torch.randn(5)
    for _ in range(2):
        power_iteration._packed(weights, u, 1, 1e-12)
    first, second = ([t.untyped_storage().data_ptr() for t in args[:3]] for args in seen)
    assert first == second  # the second call launched on the first call's tables
    addresses, rows, cols = seen[1][:3]
    assert addresses.tolist() == [W.data_ptr() for W in weights]
    assert rows.tolist() == [0, 3, 5] and cols.tolist() == [0, 4, 9]


def test_power_iteration_tables_follow_the_weights(monkeypatch):
    seen = launches(monkeypatch)
    for shapes in (((3, 4), (2, 5)), ((2, 5), (3, 4), (1, 1))):
        weights = [torch.randn(*shape) for shape in shapes]
        u = torch.randn(sum(m for m, _ in shapes))
        power_iteration._packed(weights, u, 1, 1e-12)
        addresses, rows, cols = seen[-1][:3]
        assert addresses.tolist() == [W.data_ptr() for W in weights]
        assert rows.tolist()[-1] == len(u) and cols.tolist()[-1] == sum(n for _, n in shapes)


ATTRIBUTES = {"num_regs": 254, "local_size_bytes": 0, "shared_size_bytes": 20480,
              "max_threads_per_block": 256}


class BrokenKernel:
    @property
    def attributes(self):
        raise RuntimeError("CUDA_ERROR_INVALID_CONTEXT")


def test_each_compiled_kernel_is_recorded_with_its_attributes(monkeypatch):
    # what CuPy's `RawModule.get_function` returns, as far as the record reads it
    kernels = {"attention_forward<float, 32, 128>": SimpleNamespace(attributes=ATTRIBUTES),
               "hinge": BrokenKernel()}

    class Module:
        def get_function(self, name):
            return kernels[name]

    monkeypatch.setattr(cupy_module, "_compiled", {})
    monkeypatch.setattr(cupy_module, "_module", lambda *args: Module())
    assert cupy_module.kernel_attributes() == {}
    for name in kernels:
        assert cupy_module.get_kernel("attention.cu", name) is kernels[name]
    found = cupy_module.kernel_attributes()
    assert found["attention_forward<float, 32, 128>"] == ATTRIBUTES
    assert found["hinge"] == {"error": "RuntimeError: CUDA_ERROR_INVALID_CONTEXT"}
