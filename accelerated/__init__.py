"""SAGAN for GPUs (and, slower, CPUs): ops, layers, models, training and evaluation.

Layered so each module knows only what is below it:
kernels (CuPy) -> ops (one function per equation) -> layers -> models -> train / evaluate / data.
"""
