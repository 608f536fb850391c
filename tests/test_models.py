"""SAGAN's generator and discriminator: shapes, settings, SN, init, gradients, parameter counts.

Small widths on CPU keep each test fast; the full 128x128 preset is built once, for its counts.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from accelerated.layers import ConditionalBatchNorm2d, SelfAttention
from accelerated.models import (
    ARCHITECTURES,
    Generator,
    ModelConfig,
    attention_layers,
    build_models,
)
from accelerated.models.blocks import DBlock, GBlock
from accelerated.models.param_count import (
    count_parameters,
    count_sn_buffers,
    parameter_count_formula,
)

# Widths at which every preset builds (attention needs channels divisible by 8) and runs fast.
TINY = {128: 4, 64: 8, 32: 8, 16: 8}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def tiny(resolution=32, **kwargs) -> ModelConfig:
    width = TINY[resolution]
    kwargs = {"num_classes": 5, "z_dim": 16, "g_ch": width, "d_ch": width} | kwargs
    return ModelConfig(resolution=resolution, **kwargs)


def sample(cfg: ModelConfig, batch=4, seed=0):
    """z (B, z_dim), labels (B,) (None when unconditional), images x (B, 3, R, R) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, cfg.z_dim, generator=gen)
    y = torch.randint(0, max(cfg.num_classes, 1), (batch,), generator=gen)
    x = torch.rand(batch, 3, cfg.resolution, cfg.resolution, generator=gen) * 2 - 1
    return z, y if cfg.conditional else None, x


def weighted_modules(model: nn.Module):
    """(name, module, inside_cbn) for every conv / linear / embedding of `model`."""
    cbn_parts = {id(m) for c in model.modules() if isinstance(c, ConditionalBatchNorm2d)
                 for m in c.modules()}
    return [(name, m, id(m) in cbn_parts) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]


def original_weight(m: nn.Module) -> torch.Tensor:
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight


def run_blocks(model: nn.Module, kinds) -> list[tuple[str, int, int, int]]:
    """Run the model once; (kind, in channels, out channels, out size) of each block, in order."""
    seen = []

    def hook(module, args, out):
        seen.append((type(module).__name__, args[0].shape[1], out.shape[1], out.shape[-1]))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    cfg = model.cfg
    z, y, x = sample(cfg, batch=2)
    with torch.no_grad():
        model(z, y) if isinstance(model, Generator) else model(x, y)
    for h in hooks:
        h.remove()
    return seen


# --- architecture tables and config -------------------------------------------------------


@pytest.mark.parametrize("resolution", sorted(ARCHITECTURES))
def test_tables_reach_their_resolution(resolution):
    arch = ARCHITECTURES[resolution]
    assert arch.g_sizes()[-1] == resolution
    assert len(arch.d_channels) == len(arch.d_downsample)
    assert arch.d_downsample[0], "the optimized first block downsamples"
    assert arch.d_sizes(resolution)[-1] in (4, 8)
    ModelConfig(resolution=resolution)  # the default attention sizes exist


def test_128_table_is_the_official_model():
    cfg = ModelConfig()
    arch = cfg.architecture
    g_widths = [m * cfg.g_ch for m in arch.g_channels]
    assert g_widths == [1024, 1024, 512, 256, 128, 64]
    assert [m * cfg.d_ch for m in arch.d_channels] == [64, 128, 256, 512, 1024, 1024]
    assert arch.d_sizes(128) == (64, 32, 16, 8, 4, 4)
    assert (cfg.g_attention_sizes, cfg.d_attention_sizes) == ((32,), (32,))
    assert (cfg.z_dim, cfg.num_classes, cfg.sn_generator) == (128, 1000, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 100}, "resolution=100"),
        ({"num_classes": -1}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"z_dim": 0}, "z_dim"),
        ({"g_ch": 0}, "g_ch"),
        ({"d_ch": True}, "d_ch"),
        ({"attention_block": "conv"}, "attention_block"),
        ({"attention_variant": "fast"}, "attention_variant"),
        ({"sn_generator": "yes"}, "sn_generator"),
        ({"g_attention": (12,)}, r"for G: its feature maps .* \[8, 16, 32\]"),
        ({"d_attention": (32,)}, r"for D: its feature maps .* \[8, 16\]"),
        ({"g_attention": (4,)}, "for G"),
        ({"d_attention": (16, 16)}, "twice"),
        ({"g_attention": 16}, "g_attention must be a list"),
        ({"g_ch": 1}, r"16x16 in G would get 4 channels \(4 x g_ch=1\).*raise g_ch"),
        ({"d_ch": 1, "g_ch": 2}, r"16x16 in D would get 4 channels \(4 x d_ch=1\)"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{"resolution": 32} | kwargs)


def test_narrow_widths_without_attention_are_fine():
    ModelConfig(resolution=32, g_ch=1, d_ch=1, g_attention=(), d_attention=())
    ModelConfig(resolution=32, g_ch=1, d_ch=1, attention_block="residual")


def test_attention_sizes_from_lists_and_defaults():
    assert ModelConfig(resolution=32, g_attention=[8, 32]).g_attention_sizes == (8, 32)
    assert ModelConfig(resolution=32, d_attention=[]).d_attention_sizes == ()
    assert ModelConfig(resolution=32).g_attention_sizes == ARCHITECTURES[32].g_attention


def test_labels_required_when_conditional():
    cfg = tiny()
    G, D = build_models(cfg)
    z, _, x = sample(cfg)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    with pytest.raises(ValueError, match="class-conditional"):
        D(x)


# --- forward: shapes, ranges, dtypes, layouts --------------------------------------------


@pytest.mark.parametrize("resolution", sorted(ARCHITECTURES))
@pytest.mark.parametrize("num_classes", [0, 5])
def test_shapes_and_ranges(resolution, num_classes):
    cfg = tiny(resolution, num_classes=num_classes)
    G, D = build_models(cfg)
    z, y, _ = sample(cfg, batch=3)
    images = G(z, y)
    assert images.shape == (3, 3, resolution, resolution)
    assert images.dtype == torch.float32
    assert torch.isfinite(images).all() and images.abs().max() <= 1
    assert images.std() > 0
    logits = D(images, y)
    assert logits.shape == (3,) and torch.isfinite(logits).all()


def test_float64_and_channels_last_agree():
    cfg = tiny(g_attention=(16,), d_attention=(16,))
    G, D = build_models(cfg)
    G.eval(), D.eval()
    z, y, x = sample(cfg)
    expected_g, expected_d = G(z, y), D(x, y)
    G.to(memory_format=torch.channels_last)
    D.to(memory_format=torch.channels_last)
    torch.testing.assert_close(G(z, y), expected_g)
    torch.testing.assert_close(D(x.contiguous(memory_format=torch.channels_last), y), expected_d)
    G.double(), D.double()
    assert G(z.double(), y).dtype == torch.float64
    torch.testing.assert_close(D(x.double(), y).float(), expected_d, rtol=1e-4, atol=1e-4)


def test_eval_mode_is_deterministic():
    cfg = tiny()
    G, D = build_models(cfg)
    z, y, x = sample(cfg)
    G(z, y), D(x, y)  # one training step's worth of BN statistics and SN updates
    G.eval(), D.eval()
    torch.testing.assert_close(G(z, y), G(z, y), rtol=0, atol=0)
    torch.testing.assert_close(D(x, y), D(x, y), rtol=0, atol=0)
    # In eval mode each image is generated independently of the rest of the batch.
    torch.testing.assert_close(G(z[:1], y[:1]), G(z, y)[:1])


def test_labels_condition_both_networks():
    cfg = tiny()
    G, D = build_models(cfg)
    z, y, x = sample(cfg)
    other = (y + 1) % cfg.num_classes
    G.eval(), D.eval()  # no SN update between the forwards compared
    # At init the CBN tables are all gain 1 / bias 0, so G ignores the label until trained.
    torch.testing.assert_close(G(z, y), G(z, other))
    with torch.no_grad():
        for cbn in G.modules():
            if isinstance(cbn, ConditionalBatchNorm2d):
                for p in cbn.parameters():
                    p.add_(torch.randn_like(p) * 0.5)
    assert not torch.allclose(G(z, y), G(z, other))
    assert not torch.allclose(D(x, y), D(x, other))


def test_unconditional_models_have_no_class_tables():
    cfg = tiny(num_classes=0)
    G, D = build_models(cfg)
    assert not any(isinstance(m, nn.Embedding) for m in [*G.modules(), *D.modules()])
    z, _, x = sample(cfg)
    labels = torch.zeros(len(z), dtype=torch.long)
    G.eval(), D.eval()
    torch.testing.assert_close(G(z, labels), G(z))  # labels are ignored
    torch.testing.assert_close(D(x, labels), D(x))


# --- attention placement and its ablations -----------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "g_attention", "d_attention"),
    [(32, (), ()), (32, (8,), (8,)), (32, (8, 16, 32), (16, 8)), (128, (32,), (32,)),
     (128, (64, 16), (16, 4)), (64, (64,), (4,))],
)
@pytest.mark.parametrize("variant", ["official", "paper"])
def test_attention_sits_at_the_configured_sizes(resolution, g_attention, d_attention, variant):
    cfg = tiny(resolution, g_attention=g_attention, d_attention=d_attention,
               attention_variant=variant)
    G, D = build_models(cfg)
    for model, sizes in ((G, g_attention), (D, d_attention)):
        seen = run_blocks(model, (SelfAttention, GBlock, DBlock))
        attended = [i for i, (kind, *_) in enumerate(seen) if kind == "SelfAttention"]
        assert sorted(seen[i][3] for i in attended) == sorted(sizes)
        for i in attended:
            _, c_in, c_out, size = seen[i]
            assert c_in == c_out
            # It follows the first block that produced its width and size.
            assert i > 0 and seen[i - 1][2:] == (c_in, size)
            assert [s for *_, s in seen[:i]].count(size) == 1
        assert len(attention_layers(model)) == len(sizes)
        assert all(a.gamma.item() == 0 for a in attention_layers(model))


def test_attention_layers_expose_maps():
    cfg = tiny(g_attention=(16,), d_attention=(8,))
    G, D = build_models(cfg)
    (g_attn,), (d_attn,) = attention_layers(G), attention_layers(D)
    g_attn.store_attention = d_attn.store_attention = True
    z, y, _ = sample(cfg, batch=2)
    D(G(z, y), y)
    # official variant: N = S*S queries, N/4 keys, rows sum to 1
    assert g_attn.last_attention.shape == (2, 16 * 16, 8 * 8)
    assert d_attn.last_attention.shape == (2, 8 * 8, 4 * 4)
    torch.testing.assert_close(g_attn.last_attention.sum(-1), torch.ones(2, 256))


def test_residual_block_replaces_attention():
    cfg = tiny(g_attention=(8, 32), d_attention=(16,), attention_block="residual")
    G, D = build_models(cfg)
    assert attention_layers(G) == [] and attention_layers(D) == []
    g_seen = run_blocks(G, GBlock)
    # The up-blocks' sizes 8, 16, 32, each of 8 and 32 followed by a same-size, same-width block.
    assert [s for *_, s in g_seen] == [8, 8, 16, 32, 32]
    for i in (1, 4):
        assert g_seen[i][1:3] == (g_seen[i - 1][2],) * 2
    same_size = [m for m in G.modules() if isinstance(m, GBlock) and not m.upsample]
    assert len(same_size) == 2 and all(m.shortcut is None for m in same_size)
    # D: 16 (+ its replacement), 8, 8, 8
    assert [s for *_, s in run_blocks(D, DBlock)] == [16, 16, 8, 8, 8]
    assert not D.blocks[1].downsample and D.blocks[1].shortcut is None
    z, y, _ = sample(cfg)
    assert D(G(z, y), y).shape == (4,)


# --- spectral norm and initialisation -----------------------------------------------------


@pytest.mark.parametrize("sn_generator", [True, False])
def test_spectral_norm_where_sagan_puts_it(sn_generator):
    cfg = tiny(g_attention=(16,), d_attention=(16,), sn_generator=sn_generator)
    G, D = build_models(cfg)
    for model, expected in ((G, sn_generator), (D, True)):
        found = weighted_modules(model)
        assert sum(not in_cbn for *_, in_cbn in found) > 10
        for name, m, in_cbn in found:
            sn = parametrize.is_parametrized(m, "weight")
            assert sn == (expected and not in_cbn), name
    assert count_sn_buffers(G) > 0 if sn_generator else count_sn_buffers(G) == 0


def test_xavier_uniform_init_and_converged_sigma():
    cfg = tiny()
    G, D = build_models(cfg)
    for model in (G, D):
        for name, m, in_cbn in weighted_modules(model):
            if in_cbn:
                continue
            W = original_weight(m)
            fan_in, fan_out = W[0].numel(), W[:, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert W.abs().max() <= bound, name
            if W.numel() >= 4096:  # U(-a, a) has standard deviation a / sqrt(3)
                # the sample SD of n uniform draws has a relative SD of sqrt(0.2 / n): 0.007 at
                # n = 4096, so rel=0.05 is 7 SDs
                assert W.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05), name
            if getattr(m, "bias", None) is not None:
                assert (m.bias == 0).all(), name
            if parametrize.is_parametrized(m, "weight"):
                # u, v are a power-iteration state of this weight (PyTorch's step ends with
                # v = W^T u / |W^T u|), and sigma's estimate u^T W v is near the largest
                # singular value (from below).
                W_mat, sn = W.detach().flatten(1), m.parametrizations.weight[0]
                torch.testing.assert_close(sn._v, F.normalize(W_mat.T @ sn._u, dim=0))
                sigma = torch.linalg.matrix_norm(W_mat, ord=2).item()
                assert 0.8 * sigma <= (sn._u @ W_mat @ sn._v).item() <= sigma * (1 + 1e-5), name
        for cbn in model.modules():
            if isinstance(cbn, ConditionalBatchNorm2d):
                assert {p.unique().item() for p in cbn.parameters()} <= {0.0, 1.0}


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_classes": 0}, {"attention_variant": "paper"}, {"attention_block": "residual"},
     {"sn_generator": False}],
)
def test_every_parameter_gets_a_gradient(kwargs):
    cfg = tiny(g_attention=(8, 32), d_attention=(16,), **kwargs)
    G, D = build_models(cfg)
    with torch.no_grad():
        for attn in attention_layers(G) + attention_layers(D):
            attn.gamma.fill_(0.5)  # at gamma = 0 the attention's own weights get zero gradient
    z, y, x = sample(cfg)
    loss = D(G(z, y), y).square().mean() + D(x, y).mean()
    loss.backward()
    for model in (G, D):
        for name, p in model.named_parameters():
            assert p.grad is not None, f"{name} is unused (DDP would fail)"
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# --- parameter counts ---------------------------------------------------------------------


@pytest.mark.parametrize("resolution", sorted(ARCHITECTURES))
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_classes": 0}, {"attention_variant": "paper"}, {"attention_block": "residual"},
     {"g_attention": (), "d_attention": ()}],
)
def test_parameter_count_matches_formula(resolution, kwargs):
    cfg = tiny(resolution, **kwargs)
    G, D = build_models(cfg)
    assert (count_parameters(G), count_parameters(D)) == parameter_count_formula(cfg)


def test_official_128_parameter_counts(capsys):
    cfg = ModelConfig()  # the official ImageNet 128x128 SAGAN
    G, D = build_models(cfg)
    expected_g, expected_d = parameter_count_formula(cfg)
    assert count_parameters(G) == expected_g
    assert count_parameters(D) == expected_d
    # SN adds one u (rows) and one v (columns) per weight; it never adds parameters.
    sn_layers = [m for model in (G, D) for _, m, _ in weighted_modules(model)
                 if parametrize.is_parametrized(m, "weight")]
    expected_buffers = sum(sum(original_weight(m).flatten(1).shape) for m in sn_layers)
    assert count_sn_buffers(G) + count_sn_buffers(D) == expected_buffers
    with capsys.disabled():
        print(f"\nofficial 128x128 SAGAN: G {expected_g:,} parameters "
              f"(+{count_sn_buffers(G):,} SN buffers), D {expected_d:,} "
              f"(+{count_sn_buffers(D):,} SN buffers)")


def test_summary_command(capsys):
    from accelerated.models.__main__ import main

    assert main(["--g-ch", "8", "--d-ch", "8", "--num-classes", "3"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(str(res), net) for res in sorted(ARCHITECTURES,
                                            reverse=True) for net in "GD"]
    assert all(r[2] == r[4] for r in rows), "module counts differ from the formula"
    assert main(["--g-ch", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: self-attention")
