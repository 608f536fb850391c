"""Figures, drawn with Pillow and Matplotlib: sample grids and attention maps (`images`), and a
run's curves (`curves`)."""

from accelerated.figures import curves
from accelerated.figures.images import attention_figure, grid, to_uint8, upscale_for

__all__ = ["attention_figure", "curves", "grid", "to_uint8", "upscale_for"]
