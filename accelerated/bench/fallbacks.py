"""Whether the kernels a row meant to time ran: the calls that ran PyTorch instead, by reason.

`accelerated.kernels.attention.fallbacks` counts every call that ran PyTorch in place of the
attention kernel (a kernel that did not compile, heads it does not take). A row takes a
`snapshot()` before it runs and reads `since(snapshot)` after: any reason there makes the row a
`fallback`, whatever its timings say.
"""

from collections import Counter

from accelerated.kernels import attention


def snapshot() -> Counter:
    return attention.fallbacks.copy()


def since(before: Counter) -> list[str]:
    """The reasons that made calls fall back after `before` was taken."""
    return sorted(why for why, calls in attention.fallbacks.items() if calls > before[why])


def note(reasons) -> str:
    return "PyTorch ran where a kernel was meant to: " + "; ".join(sorted(reasons))
