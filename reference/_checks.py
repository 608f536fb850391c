"""Input validation shared by the reference modules.

Each check converts its argument to a float64 array and raises one `ValueError` that names the
argument, what is wrong, and what was expected, so a mistake is caught at the call that made it
instead of surfacing as a NaN or a broadcasting error three equations later.
"""

import numpy as np


def as_finite_array(name: str, a, ndim: int | None = None) -> np.ndarray:
    """Return `a` as a float64 array; raise `ValueError` on a wrong rank or a non-finite value."""
    a = np.asarray(a, dtype=np.float64)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}): every dimension must be at least 1")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values: pass finite numbers")
    return a


def as_finite_scalar(name: str, a) -> float:
    """Return `a` as a Python float; raise `ValueError` if it is not one finite number."""
    a = np.asarray(a, dtype=np.float64)
    if a.size != 1:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    a = float(a.reshape(()))
    if not np.isfinite(a):
        raise ValueError(f"{name} must be finite, got {a}")
    return a


def check_shape(name: str, a: np.ndarray, shape: tuple[int, ...], hint: str = "") -> None:
    """Raise `ValueError` unless `a.shape == shape`; `hint` says where `shape` comes from."""
    if a.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {a.shape}, expected {tuple(shape)}" + (f" ({hint})" if hint else "")
        )


def check_positive_int(name: str, n) -> int:
    """Return `n` as an int; raise `ValueError` unless it is an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)
