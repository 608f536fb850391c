"""The compiled-block check of tests/test_kernels_gpu.py, on a CPU: it must notice a graph break."""

import pytest
import torch
from compiled_block import compiled_self_attention

from accelerated import ops
from accelerated.ops import attention as attention_op


def block():
    g = torch.Generator().manual_seed(0)
    c_qk, c_v, pool = ops.attention_dims(16, "official")
    shapes = ((c_qk, 16), (c_qk, 16), (c_v, 16), (16, c_v))
    weights = [torch.randn(*shape, generator=g) / 4 for shape in shapes]
    return torch.randn(2, 16, 4, 4, generator=g), weights, pool


def test_the_compiled_block_is_one_graph():
    x, weights, pool = block()
    with ops.force_route("sdpa"):
        got = compiled_self_attention()(x, *weights, 0.5, pool=pool)
        torch.testing.assert_close(got, ops.self_attention(x, *weights, 0.5, pool=pool))


def test_a_graph_break_in_the_block_fails_the_check(monkeypatch):
    """Bug: the GPU test compiled without `fullgraph=True`, so a graph break (the backend's
    choice reading something Dynamo cannot trace, say) passed unnoticed."""
    sdpa = attention_op._sdpa

    def breaking(q, k, v):
        torch._dynamo.graph_break()
        return sdpa(q, k, v)

    monkeypatch.setattr(attention_op, "_sdpa", breaking)
    x, weights, pool = block()
    with ops.force_route("sdpa"), pytest.raises(torch._dynamo.exc.Unsupported):
        compiled_self_attention()(x, *weights, 0.5, pool=pool)
