r"""Central finite differences, to check the hand-written backward passes of `reference/`.

`fun(**params) -> float` is a scalar loss of named float64 arrays. A directional check compares
$\langle \nabla L, d \rangle$ with $(L(p + \epsilon d) - L(p - \epsilon d)) / 2\epsilon$ for one
random direction $d$ (two evaluations, whatever the number of parameters); an elementwise check
does that for every coordinate (two evaluations per coordinate: tiny shapes only).
"""

import numpy as np


def _shifted(params: dict, direction: dict, step: float) -> dict:
    return {k: p + step * direction[k] if k in direction else p for k, p in params.items()}


def directional_derivative(fun, params: dict, direction: dict, eps: float = 1e-6) -> float:
    """(fun(p + eps d) - fun(p - eps d)) / (2 eps), d given for some of the params."""
    plus = fun(**_shifted(params, direction, eps))
    minus = fun(**_shifted(params, direction, -eps))
    return (plus - minus) / (2 * eps)


def inner(grads: dict, direction: dict) -> float:
    """<grad, d> summed over the parameters named in `direction`."""
    return float(sum(np.sum(np.asarray(grads[k]) * d) for k, d in direction.items()))


def numerical_gradient(fun, params: dict, name: str, eps: float = 1e-6) -> np.ndarray:
    """The gradient of `fun` with respect to params[name], one coordinate at a time."""
    p = np.asarray(params[name], dtype=np.float64)
    grad = np.zeros_like(p)
    for index in np.ndindex(p.shape):
        e = np.zeros_like(p)
        e[index] = 1.0
        grad[index] = directional_derivative(fun, params, {name: e}, eps)
    return grad
