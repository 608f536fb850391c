"""accelerated.layers fed the reference's weights give the reference's outputs, train and eval.

The spectrally normalised modules are PyTorch's parametrization: in training mode one step of
its power iteration runs from the stored `_v` (it updates u first, then v), so the reference
step it matches is `reference.spectral_norm.power_iteration` on W^T started from `_v` (see
`torch_order_step`); in eval mode nothing iterates and W / (u^T W v) uses the stored vectors.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from equivalence import DEVICE_DTYPES, assert_close, rounded
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from accelerated.layers import (
    SN_EPS,
    ConditionalBatchNorm2d,
    ProjectionHead,
    SelfAttention,
    sn_conv2d,
    sn_embedding,
    sn_linear,
)
from reference import attention as ref_attention
from reference import spectral_norm as ref_sn

# Keyed by (device, dtype): the ops' bounds (tests/test_ops_*.py) with room for one more product.
TOL = {
    ("cpu", torch.float64): (1e-10, 1e-11),
    ("cpu", torch.float32): (2e-4, 2e-5),
    ("cuda", torch.float32): (1e-3, 1e-4),
    ("cuda", torch.bfloat16): 8e-2,
}
ATTENTION_MAPS = ("f", "g", "h", "v")


def torch_order_step(W: np.ndarray, v0: np.ndarray):
    """One training-mode step of PyTorch's parametrization, by the reference: (W_sn, u, v)."""
    W_mat = W.reshape(W.shape[0], -1)  # (m, n)
    # torch updates u <- W v / ||.|| first, then v <- W^T u / ||.||: the reference on W^T from v0
    sigma, v, u = ref_sn.power_iteration(W_mat.T, v0)
    return W / sigma, u, v


def set_sn_state(module: nn.Module, W, u, v) -> None:
    """Load the original weight and the power-iteration vectors of an SN module."""
    weight = module.parametrizations.weight
    with torch.no_grad():
        weight.original.copy_(torch.as_tensor(W))
        weight[0]._u.copy_(torch.as_tensor(u))
        weight[0]._v.copy_(torch.as_tensor(v))


def unit(rng, n):
    a = rng.normal(size=n)
    return a / np.linalg.norm(a)


@st.composite
def sn_layers(draw):
    """A conv, linear or embedding layer with SN (kind, module) and a seed for its data."""
    kind = draw(st.sampled_from(["conv", "linear", "embedding"]))
    a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if kind == "conv":
        k, stride, padding = (
            draw(st.sampled_from([1, 3])),
            draw(st.integers(1, 2)),
            draw(st.integers(0, 1)),
        )
        module = sn_conv2d(a, b, k, stride=stride, padding=padding, bias=draw(st.booleans()))
    elif kind == "linear":
        module = sn_linear(a, b, bias=draw(st.booleans()))
    else:
        module = sn_embedding(a + 1, b)
    return kind, module, draw(st.integers(0, 2**32 - 1))


def layer_input(kind, module, rng, dtype):
    if kind == "conv":
        return rounded(rng.normal(size=(2, module.in_channels, 5, 5)), dtype)
    if kind == "linear":
        return rounded(rng.normal(size=(3, module.in_features)), dtype)
    return rng.integers(0, module.num_embeddings, size=5)


def reference_output(kind, module, x: np.ndarray, W_sn: np.ndarray) -> np.ndarray:
    """The layer's maths with the reference's W_sn, in float64."""
    W_sn, x = torch.from_numpy(W_sn), torch.from_numpy(x)
    bias = getattr(module, "bias", None)
    bias = None if bias is None else bias.detach().cpu().double()
    if kind == "conv":
        return F.conv2d(x, W_sn, bias, stride=module.stride, padding=module.padding).numpy()
    if kind == "linear":
        return F.linear(x, W_sn, bias).numpy()
    return W_sn[x].numpy()


def load_random_state(module, rng, dtype):
    """Random original weight and unit u, v (rounded to dtype); returns them as float64 arrays."""
    W = rounded(rng.normal(size=module.parametrizations.weight.original.shape), dtype)
    W_mat = W.reshape(W.shape[0], -1)
    u, v = rounded(unit(rng, W_mat.shape[0]), dtype), rounded(unit(rng, W_mat.shape[1]), dtype)
    set_sn_state(module, W, u, v)
    return W, u, v


def as_input(kind, x, device, dtype):
    return torch.tensor(x, device=device, dtype=None if kind == "embedding" else dtype)


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(layer=sn_layers())
def test_sn_layers_in_train_mode_take_one_power_step(device, dtype, layer):
    kind, module, seed = layer
    rng = np.random.default_rng(seed)
    module = module.to(device=device, dtype=dtype).train()
    W, _, v0 = load_random_state(module, rng, dtype)
    x = layer_input(kind, module, rng, dtype)
    out = module(as_input(kind, x, device, dtype))
    W_sn, u1, v1 = torch_order_step(W, v0)
    state = module.parametrizations.weight[0]
    assert_close(state._u, u1, TOL[device, dtype])  # u and v moved one step
    assert_close(state._v, v1, TOL[device, dtype])
    assert_close(out, reference_output(kind, module, x, W_sn), TOL[device, dtype])


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(layer=sn_layers())
def test_sn_layers_in_eval_mode_use_the_stored_vectors(device, dtype, layer):
    kind, module, seed = layer
    rng = np.random.default_rng(seed)
    module = module.to(device=device, dtype=dtype).eval()
    W = rounded(rng.normal(size=module.parametrizations.weight.original.shape), dtype)
    # the reference's state after some training steps: W_sn = W / (u^T W v) with its u, v
    W_sn, _, u, v = ref_sn.spectral_norm(W, unit(rng, W.shape[0]), n_steps=3)
    u, v = rounded(u, dtype), rounded(v, dtype)  # moves sigma by ~ the dtype's roundoff
    set_sn_state(module, W, u, v)
    x = layer_input(kind, module, rng, dtype)
    out = module(as_input(kind, x, device, dtype))
    state = module.parametrizations.weight[0]
    assert torch.equal(state._u.cpu(), torch.tensor(u, dtype=dtype))  # nothing iterated
    assert torch.equal(state._v.cpu(), torch.tensor(v, dtype=dtype))
    assert_close(module.weight, W_sn, TOL[device, dtype])
    assert_close(out, reference_output(kind, module, x, W_sn), TOL[device, dtype])


@st.composite
def attention_layers(draw):
    """A SelfAttention layer (variant, C), its input and a seed."""
    variant = draw(st.sampled_from(["paper", "official"]))
    C, B = draw(st.sampled_from([8, 16])), draw(st.integers(1, 2))
    H, W = 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3))
    return SelfAttention(C, variant), (B, C, H, W), draw(st.integers(0, 2**32 - 1))


def load_attention(layer, rng, dtype, gamma):
    """Random weights and vectors in the four SN maps; returns {name: (W, u, v)} as float64."""
    state = {}
    for name in ATTENTION_MAPS:
        shape = getattr(layer, name).parametrizations.weight.original.shape  # (out, in, 1, 1)
        W = rounded(rng.normal(size=shape) / np.sqrt(shape[1]), dtype)
        # vectors as after some training steps (random ones could make u^T W v nearly 0)
        _, _, u, v = ref_sn.spectral_norm(W, unit(rng, shape[0]), n_steps=3)
        u, v = rounded(u, dtype), rounded(v, dtype)
        set_sn_state(getattr(layer, name), W, u, v)
        state[name] = (W, u, v)
    with torch.no_grad():
        layer.gamma.fill_(gamma)
    return state


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@pytest.mark.parametrize("mode", ["train", "eval"])
@given(case=attention_layers())
def test_self_attention_layer_matches_reference(device, dtype, mode, case):
    layer, shape, seed = case
    rng = np.random.default_rng(seed)
    layer = layer.to(device=device, dtype=dtype).train(mode == "train")
    layer.store_attention = True
    gamma = float(rounded(rng.uniform(0.5, 1.5), dtype))
    state = load_attention(layer, rng, dtype, gamma)
    x = rounded(rng.normal(size=shape), dtype)
    y = layer(torch.tensor(x, dtype=dtype, device=device))
    if mode == "train":  # one power step per map, from the stored v
        W_sn = {k: torch_order_step(W, v)[0] for k, (W, u, v) in state.items()}
    else:  # the stored u, v: W / (u^T W v)
        W_sn = {k: W / (u @ W.reshape(W.shape[0], -1) @ v) for k, (W, u, v) in state.items()}
    matrices = [W_sn[k].reshape(W_sn[k].shape[:2]) for k in ATTENTION_MAPS]
    y_ref, beta_ref = ref_attention.self_attention(x, *matrices, gamma, pool=layer.pool)
    assert_close(layer.last_attention, beta_ref, TOL[device, dtype])
    assert_close(y, y_ref, TOL[device, dtype])
    assert not layer.last_attention.requires_grad


@given(case=attention_layers())
def test_self_attention_layer_gradients_reach_the_original_weights(case):
    """dL/dW through attention and spectral norm: reference backward of each, chained."""
    layer, shape, seed = case
    rng = np.random.default_rng(seed)
    layer = layer.double().train()
    state = load_attention(layer, rng, torch.float64, gamma=0.8)
    x, dy = rng.normal(size=shape), rng.normal(size=shape)
    layer(torch.tensor(x)).backward(torch.tensor(dy))
    steps = {k: torch_order_step(W, v) for k, (W, u, v) in state.items()}  # (W_sn, u, v)
    matrices = [steps[k][0].reshape(steps[k][0].shape[:2]) for k in ATTENTION_MAPS]
    grads = ref_attention.self_attention_backward(dy, x, *matrices, 0.8, pool=layer.pool)
    for name, key in zip(ATTENTION_MAPS, ("W_f", "W_g", "W_h", "W_v"), strict=True):
        W, (_, u, v) = state[name][0], steps[name]
        dW_sn = grads[key].reshape(W.shape)
        expected = ref_sn.spectral_norm_backward(dW_sn, W, u, v)
        original = getattr(layer, name).parametrizations.weight.original
        assert_close(original.grad, expected, TOL["cpu", torch.float64])
    assert_close(layer.gamma.grad, grads["gamma"], TOL["cpu", torch.float64])


@pytest.mark.parametrize(("variant", "c_v"), [("paper", 2), ("official", 8)])
def test_self_attention_layer_shapes_and_initial_identity(variant, c_v):
    layer = SelfAttention(16, variant)
    assert [tuple(getattr(layer, k).weight.shape) for k in ATTENTION_MAPS] == [
        (2, 16, 1, 1), (2, 16, 1, 1), (c_v, 16, 1, 1), (16, c_v, 1, 1),
    ]  # fmt: skip
    assert all(getattr(layer, k).bias is None for k in ATTENTION_MAPS)
    assert all(parametrize.is_parametrized(getattr(layer, k)) for k in ATTENTION_MAPS)
    assert layer.gamma.item() == 0.0 and layer.last_attention is None
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(layer(x), x)  # gamma = 0: the identity
    assert layer.last_attention is None  # store_attention is off by default


def test_self_attention_without_sn_has_plain_convolutions():
    layer = SelfAttention(8, "paper", sn=False)
    assert not any(parametrize.is_parametrized(getattr(layer, k)) for k in ATTENTION_MAPS)
    with pytest.raises(ValueError, match="multiple of 8"):
        SelfAttention(12)


def test_sn_factories_register_torch_spectral_norm_with_the_documented_eps():
    for module in (sn_conv2d(3, 4, 3), sn_linear(3, 4), sn_embedding(5, 4)):
        norm = module.parametrizations.weight[0]
        assert norm.eps == SN_EPS and norm.n_power_iterations == 1
        if getattr(module, "bias", None) is not None:
            assert not module.bias.any()  # zero biases, as the official code
    plain = sn_linear(3, 4, sn=False)
    assert not parametrize.is_parametrized(plain) and isinstance(plain, nn.Linear)


def test_u_moves_in_train_mode_only():
    conv = sn_conv2d(3, 4, 3)
    x = torch.randn(1, 3, 5, 5)
    u0 = conv.parametrizations.weight[0]._u.clone()
    conv.eval()(x)
    assert torch.equal(conv.parametrizations.weight[0]._u, u0)
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(torch.randn(4, 1, 1, 1))  # move the top pair
    conv.train()(x)
    assert not torch.equal(conv.parametrizations.weight[0]._u, u0)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conditional_batchnorm_applies_the_class_rows(mode):
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, num_classes=4).double().train(mode == "train")
    assert torch.equal(cbn.gain.weight, torch.ones(4, 3, dtype=torch.float64))
    assert torch.equal(cbn.bias.weight, torch.zeros(4, 3, dtype=torch.float64))
    assert not parametrize.is_parametrized(cbn.gain)  # no SN on the class tables
    with torch.no_grad():
        cbn.gain.weight.normal_()
        cbn.bias.weight.normal_()
        cbn.bn.running_mean.normal_()
        cbn.bn.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.tensor([0, 3, 3, 1, 2])
    if mode == "train":
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean, var = cbn.bn.running_mean, cbn.bn.running_var
    x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + cbn.bn.eps)
    expected = cbn.gain.weight[y][:, :, None, None] * x_hat + cbn.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(x, y), expected)


def test_unconditional_batchnorm_is_plain_affine_batchnorm():
    cbn, bn = ConditionalBatchNorm2d(3, num_classes=0), nn.BatchNorm2d(3)
    with torch.no_grad():
        for module in (cbn.bn, bn):
            module.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
            module.bias.copy_(torch.tensor([0.1, 0.0, 3.0]))
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(cbn(x), bn(x))
    with pytest.raises(ValueError, match="pass labels y"):
        ConditionalBatchNorm2d(3, num_classes=2)(x)


@pytest.mark.parametrize("num_classes", [0, 5])
def test_projection_head_matches_reference_weights(num_classes):
    rng = np.random.default_rng(0)
    head = ProjectionHead(6, num_classes).double().eval()
    h, y = rng.normal(size=(4, 6)), rng.integers(0, max(num_classes, 1), size=4)
    W_sn = {}
    for name in ("linear", "embed")[: 1 + bool(num_classes)]:
        module = getattr(head, name)
        W = rng.normal(size=module.parametrizations.weight.original.shape)
        W_sn[name], _, u, v = ref_sn.spectral_norm(W, unit(rng, W.shape[0]), n_steps=2)
        set_sn_state(module, W, u, v)
    expected = h @ W_sn["linear"][0] + head.linear.bias.item()
    if num_classes:
        expected += (W_sn["embed"][y] * h).sum(axis=1)  # <embed(y), h>
    logits = head(torch.tensor(h), torch.tensor(y) if num_classes else None)
    assert logits.shape == (4,)
    assert_close(logits, expected, TOL["cpu", torch.float64])
    if num_classes:
        with pytest.raises(ValueError, match="pass labels y"):
            head(torch.tensor(h))
