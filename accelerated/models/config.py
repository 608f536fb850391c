"""`ModelConfig`: every setting of SAGAN's generator and discriminator, checked on creation."""

from dataclasses import dataclass, field
from typing import Any

from accelerated.models.architectures import ARCHITECTURES, Architecture

ATTENTION_BLOCKS = ("attention", "residual")
ATTENTION_VARIANTS = ("official", "paper")


def setting(default: Any, doc: str) -> Any:
    """A config field with its documentation (what `--help` prints), e.g.
    `z_dim: int = setting(128, "Length of z")`."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ModelConfig:
    """The models' settings. The defaults are the official 128x128 ImageNet SAGAN (SPEC section 4).

    Invalid values raise `ValueError` at construction, naming the field and what is allowed.
    """

    resolution: int = setting(128,
        'Image size in pixels (square); selects the table in `architectures.ARCHITECTURES`.')
    num_classes: int = setting(1000,
        'Number of classes for conditional BN in G and the projection in D; 0 = unconditional.')
    z_dim: int = setting(128, 'Length of the latent vector z ~ N(0, I) fed to G.')
    g_ch: int = setting(64,
        'G\'s base width ("gf" in the official code); block widths are multiples of it.')
    d_ch: int = setting(64, 'D\'s base width ("df" in the official code).')
    g_attention: tuple[int, ...] | None = setting(None,
        'Feature-map sizes of G after whose up-block a self-attention block sits; () = none; None '
        "= the architecture's default (32 for the 128x128 model).")
    d_attention: tuple[int, ...] | None = setting(None,
        'Feature-map sizes of D after whose (first) block of that size a self-attention block '
        "sits; () = none; None = the architecture's default.")
    attention_block: str = setting("attention",
        '"attention": self-attention blocks at those sizes; "residual": a plain residual block of '
        "the same width and size instead (the paper's ablation).")
    attention_variant: str = setting("official",
        '"official": query/key C/8, value C/2, keys and values 2x2 max-pooled (the released '
        'code); "paper": query/key/value C/8, no pooling (the paper\'s text). SPEC section 1.')
    sn_generator: bool = setting(True,
        "Spectral norm on G's convs and linear too (SAGAN); False = SN in D only (the ablation).")
    d_minibatch_std: int = setting(0,
        "Group size of a minibatch-std feature map fed to D's last block (ProGAN, against mode "
        "collapse; not in SAGAN); 0 = none.")
    d_minibatch_std_features: int = setting(1,
        "Number of minibatch-std feature maps: each averages the spread of an equal slice of the "
        "channels (1 = ProGAN's single map; D's width = one per channel).")

    def __post_init__(self) -> None:
        if self.resolution not in ARCHITECTURES:
            raise ValueError(
                f"resolution={self.resolution!r} has no architecture table: "
                f"use one of {sorted(ARCHITECTURES)}"
            )
        for name in ("num_classes", "z_dim", "g_ch", "d_ch"):
            value, least = getattr(self, name), 0 if name == "num_classes" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.attention_block not in ATTENTION_BLOCKS:
            raise ValueError(
                f"attention_block={self.attention_block!r}: use one of {ATTENTION_BLOCKS}"
            )
        if self.attention_variant not in ATTENTION_VARIANTS:
            raise ValueError(
                f"attention_variant={self.attention_variant!r}: use one of {ATTENTION_VARIANTS}"
            )
        std = self.d_minibatch_std
        if not isinstance(std, int) or isinstance(std, bool) or std < 0 or std == 1:
            raise ValueError(f"d_minibatch_std must be 0 (none) or a group size >= 2, got {std!r}")
        features = self.d_minibatch_std_features
        width = self.architecture.d_channels[-2] * self.d_ch  # into D's last block
        if not isinstance(features, int) or isinstance(features, bool) or features < 1 or (
                width % features):
            raise ValueError(f"d_minibatch_std_features must divide D's {width} channels before "
                             f"its last block, got {features!r}")
        if not isinstance(self.sn_generator, bool):
            raise ValueError(f"sn_generator must be True or False, got {self.sn_generator!r}")
        for name in ("g_attention", "d_attention"):
            sizes = getattr(self, name)
            if sizes is None:
                continue
            if not isinstance(sizes, list | tuple):
                raise ValueError(f"{name} must be a list of feature-map sizes, e.g. [32], "
                                 f"got {sizes!r}")
            # Lists (from TOML or JSON) become tuples so the config stays hashable.
            object.__setattr__(self, name, tuple(sizes))
        arch = self.architecture
        g_widths = dict(zip(arch.g_sizes(), arch.g_channels[1:], strict=True))
        d_widths = {size: arch.d_channels[i]
                    for size, i in arch.d_first_blocks(self.resolution).items()}
        self._check_attention("G", self.g_attention_sizes, g_widths, self.g_ch, "g_ch")
        self._check_attention("D", self.d_attention_sizes, d_widths, self.d_ch, "d_ch")

    @property
    def architecture(self) -> Architecture:
        """The table of `resolution`."""
        return ARCHITECTURES[self.resolution]

    @property
    def conditional(self) -> bool:
        """Whether the models take class labels (num_classes > 0)."""
        return self.num_classes > 0

    @property
    def g_attention_sizes(self) -> tuple[int, ...]:
        """`g_attention`, with None resolved to the architecture's default."""
        return self.architecture.g_attention if self.g_attention is None else self.g_attention

    @property
    def d_attention_sizes(self) -> tuple[int, ...]:
        """`d_attention`, with None resolved to the architecture's default."""
        return self.architecture.d_attention if self.d_attention is None else self.d_attention

    @property
    def d_attention_blocks(self) -> set[int]:
        """Indices of the D blocks followed by an attention block: for each attention size, the
        first block whose output has that size."""
        first_blocks = self.architecture.d_first_blocks(self.resolution)
        return {first_blocks[size] for size in self.d_attention_sizes}


    def _check_attention(self, net: str, sizes: tuple[int, ...], widths: dict[int, int],
                         base: int, base_name: str) -> None:
        """Raise unless each attention size is a feature-map size of `net`, listed once, whose
        width (`widths[size] * base`) a self-attention block can take (a multiple of 8)."""
        for size in sizes:
            if size not in widths:
                raise ValueError(
                    f"attention size {size!r} for {net}: its feature maps at this resolution "
                    f"are {sorted(widths)} pixels a side; pick sizes among those"
                )
            channels = widths[size] * base
            if self.attention_block == "attention" and channels % 8:
                raise ValueError(
                    f"self-attention at {size}x{size} in {net} would get {channels} channels "
                    f"({widths[size]} x {base_name}={base}); it needs a multiple of 8 (C/8 "
                    f"query/key channels): raise {base_name}"
                )
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"attention sizes for {net} list a size twice: {sizes}")
