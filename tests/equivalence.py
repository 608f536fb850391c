"""Helpers for the differential tests of accelerated/ against reference/ (same maths, two codes).

Inputs are drawn as float64 NumPy arrays, rounded to the dtype under test (`rounded`), and the
same rounded numbers go to both sides, so a mismatch measures the PyTorch code's arithmetic and
not the rounding of its inputs. Tolerances are named per op and dtype in each test file.
"""

import numpy as np
import pytest
import torch

# Where each dtype is tested: CPU in float64 and float32, CUDA in float32 and bfloat16.
DEVICE_DTYPES = [
    pytest.param("cpu", torch.float64, id="cpu-float64"),
    pytest.param("cpu", torch.float32, id="cpu-float32"),
    pytest.param("cuda", torch.float32, id="cuda-float32", marks=pytest.mark.gpu),
    pytest.param("cuda", torch.bfloat16, id="cuda-bfloat16", marks=pytest.mark.gpu),
]
CPU_DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


def rounded(a, dtype: torch.dtype) -> np.ndarray:
    """`a` rounded to `dtype` and back to float64: the numbers both sides will see."""
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype).double().numpy()


def assert_close(actual: torch.Tensor, expected, tol, scale: float | None = None) -> None:
    """Compare a tensor from accelerated/ with a float64 array from reference/.

    `tol = (rtol, atol)`: elementwise, |a - e| <= rtol |e| + atol * scale, `scale` defaulting to
    max |e| (so atol is relative to the tensor's magnitude, which varies with the shapes).
    `tol` a float (bfloat16): ||a - e|| <= tol * scale, `scale` defaulting to ||e||; 8 bits of
    mantissa flip near-ties of a max-pool and make single elements meaningless, the whole
    tensor's relative error is not.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = actual.detach().double().cpu().numpy()
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if isinstance(tol, tuple):
        rtol, atol = tol
        scale = float(np.abs(expected).max()) if scale is None else scale
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)
        return
    scale = float(np.linalg.norm(expected)) if scale is None else scale
    error = float(np.linalg.norm(actual - expected))
    assert error <= tol * scale, f"relative error {error / scale:.3g} > {tol}"
