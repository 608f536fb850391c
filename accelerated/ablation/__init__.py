r"""`python -m accelerated.ablation`: the paper's ablation at a size a CPU can run.

It trains each configuration of `variants.VARIANTS` (SAGAN, and SAGAN with one thing changed:
no attention, attention elsewhere, a residual block instead of attention, SN on D only, equal
learning rates) for a few seeds with `accelerated.train`, then writes a table of the quality
reached, with its spread over seeds, and a plot of quality vs step:

```bash
python -m accelerated.ablation --seeds 3 --steps 1000 --jobs 2 --out ablation
```

Modules: `variants` (the configurations, as data), `runs` (one run folder per configuration
and seed: done, partial or new), `workers` (parallel `accelerated.train` processes),
`results` (the table), `plot` (the figure).
"""
