r"""SAGAN's architectures as data: one table per image resolution.

Each table lists, as multiples of the base widths `g_ch` / `d_ch`, the channels that leave
every residual block, in the spirit of BigGAN-PyTorch's `G_arch` / `D_arch` dictionaries. The
modules in `generator.py` and `discriminator.py` read these tables and nothing else, so a new
resolution is a new entry here.

- **Generator**: an SN-linear maps $z$ to a $4 \times 4$ map with `g_channels[0] * g_ch`
  channels; up-block $i$ doubles the size and outputs `g_channels[i + 1] * g_ch` channels, so
  the feature-map sizes after the blocks are $8, 16, \dots, R$.
- **Discriminator**: block $i$ outputs `d_channels[i] * d_ch` channels and halves the size when
  `d_downsample[i]`; block 0 is the "optimized" first block (no ReLU on the image) and always
  downsamples.

The 128 entry is the official model of the paper (SPEC section 4, `generator_test` /
`discriminator_test`); 64 and 32 follow BigGAN-PyTorch's tables (its SAGAN/SNGAN-style
arches), 16 is a small one for the built-in CPU data set.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """The table of one resolution (see the module docstring for what each field means)."""

    g_channels: tuple[int, ...]
    """Multiples of `g_ch`: the 4x4 input map, then the output of each up-block."""
    d_channels: tuple[int, ...]
    """Multiples of `d_ch`: the output of each D block (block 0 is the optimized first block)."""
    d_downsample: tuple[bool, ...]
    """Whether each D block halves the feature-map size."""
    g_attention: tuple[int, ...]
    """Default feature-map sizes of G at which a self-attention block follows an up-block."""
    d_attention: tuple[int, ...]
    """Default feature-map sizes of D at which a self-attention block follows a D block."""
    source: str
    """Where the table comes from."""

    def g_sizes(self) -> tuple[int, ...]:
        """Feature-map size after each up-block of G: 8, 16, ..., resolution."""
        return tuple(4 * 2 ** (i + 1) for i in range(len(self.g_channels) - 1))

    def d_sizes(self, resolution: int) -> tuple[int, ...]:
        """Feature-map size after each D block, for images of `resolution` pixels a side."""
        sizes, size = [], resolution
        for down in self.d_downsample:
            size = size // 2 if down else size
            sizes.append(size)
        return tuple(sizes)

    def d_first_blocks(self, resolution: int) -> dict[int, int]:
        """{feature-map size: index of the first D block that outputs it}: a D attention block
        at a size follows that block (the 128x128 D has two 4x4 blocks, the 32x32 D three 8x8)."""
        first: dict[int, int] = {}
        for i, size in enumerate(self.d_sizes(resolution)):
            first.setdefault(size, i)
        return first


ARCHITECTURES: dict[int, Architecture] = {
    128: Architecture(
        g_channels=(16, 16, 8, 4, 2, 1),
        d_channels=(1, 2, 4, 8, 16, 16),
        d_downsample=(True, True, True, True, True, False),
        g_attention=(32,),
        d_attention=(32,),
        source="official SAGAN code (generator_test / discriminator_test), SPEC section 4",
    ),
    64: Architecture(
        g_channels=(16, 16, 8, 4, 2),
        d_channels=(1, 2, 4, 8, 16),
        d_downsample=(True, True, True, True, False),
        g_attention=(32,),
        d_attention=(32,),
        source="BigGAN-PyTorch's 64x64 G_arch / D_arch",
    ),
    32: Architecture(
        g_channels=(4, 4, 4, 4),
        d_channels=(4, 4, 4, 4),
        d_downsample=(True, True, False, False),
        g_attention=(16,),
        d_attention=(16,),
        source="BigGAN-PyTorch's 32x32 G_arch / D_arch (the SNGAN CIFAR-10 ResNet)",
    ),
    16: Architecture(
        g_channels=(4, 4, 4),
        d_channels=(4, 4, 4),
        d_downsample=(True, True, False),
        g_attention=(8,),
        d_attention=(8,),
        source="this project: the 32x32 table one block shorter, for the built-in CPU data set",
    ),
}
