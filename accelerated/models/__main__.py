"""`python -m accelerated.models`: parameter counts of G and D for every architecture table.

For each resolution it prints the built models' trainable parameters, the same with the
spectral-norm buffers (u, v) added, and the count the official code's layers give by formula
(`param_count.parameter_count_formula`), which must agree with the first.
"""

import argparse
import sys

from accelerated.models import ARCHITECTURES, ModelConfig, build_models
from accelerated.models.param_count import (
    count_parameters,
    count_sn_buffers,
    parameter_count_formula,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accelerated.models", description=__doc__)
    parser.add_argument("--num-classes", type=int, default=1000, help="0 = unconditional")
    parser.add_argument("--g-ch", type=int, default=64, help="G's base width")
    parser.add_argument("--d-ch", type=int, default=64, help="D's base width")
    args = parser.parse_args(argv)
    try:
        configs = [ModelConfig(resolution=r, num_classes=args.num_classes, g_ch=args.g_ch,
                               d_ch=args.d_ch) for r in sorted(ARCHITECTURES, reverse=True)]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'res':>4} {'net':>3} {'params':>12} {'params+SN u,v':>14} {'formula':>12}  attention")
    for cfg in configs:
        resolution, models = cfg.resolution, build_models(cfg)
        sizes = (cfg.g_attention_sizes, cfg.d_attention_sizes)
        for name, model, formula, at in zip("GD", models, parameter_count_formula(cfg), sizes,
                                            strict=True):
            params = count_parameters(model)
            print(f"{resolution:>4} {name:>3} {params:>12,} {params + count_sn_buffers(model):>14,}"
                  f" {formula:>12,}  {at}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
