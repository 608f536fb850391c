r"""The two time-scale update rule (TTUR) of SAGAN: Adam with separate learning rates for G and D.

Heusel et al. 2017 (*GANs trained by a two time-scale update rule converge to a local Nash
equilibrium*) show that when the discriminator and the generator are updated with different
learning rates, chosen so that D moves on a faster time scale than G, stochastic gradient
training converges to a local Nash equilibrium. Intuitively, D can then track the best response to
the slowly changing G, so G always follows the gradient of a nearly optimal D.

SAGAN (Zhang et al. 2019, Sec. 4) uses this to avoid several D steps per G step: **one** D step
per G step, with

$$\eta_D = 4 \times 10^{-4}, \qquad \eta_G = 1 \times 10^{-4},$$

both with Adam (Kingma & Ba 2015) with $\beta_1 = 0$ (no momentum), and $\beta_2 = 0.9$ in the
paper text, $0.999$ in the official code. One Adam step for parameters $\theta$ with gradient
$g$ at step $t = 1, 2, \ldots$:

$$m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g^2,$$

$$\hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
\theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.$$

With $\beta_1 = 0$, $\hat m_t = g$: each step is the current gradient scaled per coordinate by
a running RMS of past gradients.
"""

import numpy as np

from reference._checks import as_finite_array, check_positive_int, check_shape

# --8<-- [start:ttur]
# two time scales: the discriminator learns 4x faster than the generator
TTUR_LR_D = 4e-4
TTUR_LR_G = 1e-4
# Adam (beta1, beta2): beta1 = 0 in both; beta2 = 0.999 in the official code, 0.9 in the paper text
ADAM_BETAS_OFFICIAL = (0.0, 0.999)
ADAM_BETAS_PAPER = (0.0, 0.9)
# --8<-- [end:ttur]


def adam_step(theta, grad, m, v, t: int, lr: float, beta1: float, beta2: float, eps: float = 1e-8):
    r"""One Adam step (Kingma & Ba 2015, Algorithm 1): returns the new `(theta, m, v)`.

    - `theta`, `grad`, `m`, `v`: arrays of one shape (parameters, their gradient, and Adam's first
      and second moment estimates; start both moments at zeros).
    - `t` >= 1: the number of this step, counting from 1 (for the bias corrections).
    - `lr`: $\eta$, `TTUR_LR_D` for the discriminator and `TTUR_LR_G` for the generator.
    - `beta1`, `beta2`: e.g. `ADAM_BETAS_OFFICIAL`; `eps`: $\epsilon$ in the denominator.

    The same arithmetic as `torch.optim.Adam` (without weight decay or amsgrad).
    """
    theta = as_finite_array("theta", theta)
    grad = as_finite_array("grad", grad)
    m = as_finite_array("m", m)
    v = as_finite_array("v", v)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        check_shape(name, a, theta.shape, "it must have the shape of theta")
    t = check_positive_int("t", t)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")

    # --8<-- [start:adam-step]
    # m_t = beta1 m_{t-1} + (1 - beta1) g
    m = beta1 * m + (1.0 - beta1) * grad
    # v_t = beta2 v_{t-1} + (1 - beta2) g^2
    v = beta2 * v + (1.0 - beta2) * grad**2
    # bias corrections: m_hat = m_t / (1 - beta1^t), v_hat = v_t / (1 - beta2^t)
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    # theta_t = theta_{t-1} - lr m_hat / (sqrt(v_hat) + eps)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    # --8<-- [end:adam-step]
    return theta, m, v
