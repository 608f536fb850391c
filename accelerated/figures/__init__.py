"""Figures, drawn with Pillow and Matplotlib: sample grids and attention maps (`images`), a
run's curves (`curves`), a row of plots cut into its panels for a page (`panels`), and a
notebook's output folded until the reader opens it (`hidden`)."""

from accelerated.figures import curves
from accelerated.figures.images import attention_figure, grid, non_finite, to_uint8, upscale_for

__all__ = ["attention_figure", "curves", "grid", "non_finite", "to_uint8", "upscale_for"]
