"""The attention block compiled as tests/test_kernels_gpu.py compiles it: `fullgraph=True`, so a
graph break anywhere in the block (a route, the backend's choice, a kernel's op) is an error, not
a silent split that runs part of the block eagerly."""

import torch

from accelerated import ops


def compiled_self_attention():
    """`ops.self_attention` under `torch.compile`, one graph or an error (a fresh Dynamo cache)."""
    torch._dynamo.reset()
    return torch.compile(ops.self_attention, fullgraph=True)
