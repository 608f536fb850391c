r"""`python -m accelerated.sample CHECKPOINT --out DIR`: images from a trained generator.

```bash
python -m accelerated.sample runs/try1 --out samples/ --grid          # one 8 x 8 grid.png
python -m accelerated.sample runs/try1 --out samples/ --n 100         # 100 single PNGs
python -m accelerated.sample runs/try1 --out samples/ --class-sheet   # one row per class
```

CHECKPOINT is a checkpoint file or a run folder (its newest checkpoint). The EMA generator is
used when the run kept one (`--no-ema` for the raw one). The checkpoint loads with
`torch.load(weights_only=True)`; the architecture comes from the config saved inside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from accelerated import checkpoint, figures
from accelerated.cli import Parser, resolve_device, run, seed
from accelerated.models import generate

PROG = "python -m accelerated.sample"


def make_parser() -> Parser:
    parser = Parser(prog=PROG, description="Draw images from a trained SAGAN generator.")
    parser.add_argument("checkpoint", help="a checkpoint file, or a run folder (newest checkpoint)")
    parser.add_argument("--out", required=True, help="folder to write the PNGs to")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--n", type=int, metavar="N", help="write N single images sample-XXXXX.png")
    what.add_argument("--grid", action="store_true", help="write grid.png, 8 x 8 samples (default)")
    what.add_argument("--class-sheet", action="store_true",
                      help="write class_sheet.png: one row per class (--classes), --columns each")
    parser.add_argument("--class", dest="label", type=int, default=None, metavar="K",
                        help="draw only class K (default: classes uniformly at random)")
    parser.add_argument("--classes", default=None, metavar="LIST",
                        help="classes of the class sheet, e.g. 0,1,2 (default: all, at most 32)")
    parser.add_argument("--columns", type=int, default=8, help="images per row (default: 8)")
    parser.add_argument("--seed", type=seed, default=0, help="noise seed (default: 0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not the EMA")
    return parser


def labels_for(args, n: int, num_classes: int, gen: torch.Generator) -> torch.Tensor | None:
    if num_classes == 0:
        return None
    if args.label is not None:
        if not 0 <= args.label < num_classes:
            raise ValueError(f"--class {args.label}: the model has classes 0..{num_classes - 1}")
        return torch.full((n,), args.label, dtype=torch.long)
    return torch.randint(num_classes, (n,), generator=gen)


def sheet_classes(args, num_classes: int) -> torch.Tensor:
    if num_classes == 0:
        raise ValueError("--class-sheet needs a class-conditional model; this one has no classes")
    if args.classes is None:
        return torch.arange(min(num_classes, 32))
    try:
        classes = torch.tensor([int(c) for c in args.classes.split(",") if c.strip()])
    except ValueError:
        raise ValueError(f"--classes {args.classes!r}: give class numbers like 0,3,7") from None
    if len(classes) == 0 or classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"--classes {args.classes!r}: use classes among 0..{num_classes - 1}")
    return classes


def draw(args) -> str:
    """Draw and write the images the parsed arguments ask for; returns what was written where."""
    if args.n is not None and args.n < 1:
        raise ValueError("--n must be at least 1")
    if args.columns < 1:
        raise ValueError("--columns must be at least 1")
    device = resolve_device(args.device)
    G, model, path = checkpoint.load_generator(Path(args.checkpoint), device, ema=not args.no_ema)
    gen = torch.Generator().manual_seed(args.seed)
    if args.class_sheet:
        y = sheet_classes(args, model.num_classes).repeat_interleave(args.columns)
    else:
        y = labels_for(args, args.n if args.n is not None else 64, model.num_classes, gen)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # fail before the work, not after
    n = len(y) if y is not None else (args.n or 64)
    z = torch.randn(n, model.z_dim, generator=gen)
    images = generate(G, z.to(device), None if y is None else y.to(device))
    if args.n is not None:
        for i, pixels in enumerate(figures.to_uint8(images)):
            Image.fromarray(pixels).save(out / f"sample-{i:05d}.png")
        return f"{n} images sample-*.png in {out} (from {path})"
    name = "class_sheet.png" if args.class_sheet else "grid.png"
    figures.grid(images, args.columns).save(out / name)
    return f"{out / name} (from {path})"


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return run(PROG, lambda: print(f"wrote {draw(args)}"))


if __name__ == "__main__":
    sys.exit(main())
