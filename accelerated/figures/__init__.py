"""Figures, drawn with Pillow and Matplotlib: sample grids and attention maps (`images`), and a
run's curves (`curves`)."""

from accelerated.figures import curves
from accelerated.figures.images import attention_figure, grid, non_finite, to_uint8, upscale_for

__all__ = ["attention_figure", "curves", "grid", "non_finite", "to_uint8", "upscale_for"]
