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
from accelerated.cli import Parser, UserError, add_generator_options, resolve_device, run, seed
from accelerated.models import generate, sample_noise

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
    add_generator_options(parser)
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
    """Draw and write the images the parsed arguments ask for; returns what was written where.

    Images are generated and written `batch` at a time, so any --n fits in memory. The labels of
    a seed come first in its random stream and the noise after them, drawn batch by batch: a
    seed gives the same images whatever the batch (CPU torch draws normal noise in blocks of 16,
    and a batch of 256 noise vectors is a whole number of blocks). A generator whose images are
    not finite (it diverged) stops with one line, exit status 1."""
    if args.n is not None and args.n < 1:
        raise ValueError("--n must be at least 1")
    if args.columns < 1:
        raise ValueError("--columns must be at least 1")
    batch, most_in_a_picture = 256, 4096
    device = resolve_device(args.device)
    G, model, path = checkpoint.load_generator(Path(args.checkpoint), device, ema=not args.no_ema)
    rows = sheet_classes(args, model.num_classes) if args.class_sheet else None
    n = args.n or (64 if rows is None else len(rows) * args.columns)
    if args.n is None and n > most_in_a_picture:
        raise ValueError(f"--columns {args.columns}: a sheet of {n} images is more than one "
                         f"picture holds here ({most_in_a_picture}): use fewer --columns or "
                         f"--classes, or --n for single images")
    sheet = None if rows is None else rows.repeat_interleave(args.columns)
    labels, noise = (torch.Generator().manual_seed(args.seed) for _ in range(2))
    starts = range(0, n, batch)
    if sheet is None:
        for start in starts:  # move the noise's stream past the labels (checks --class)
            labels_for(args, min(batch, n - start), model.num_classes, noise)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # fail before the work, not after
    kept = []  # the images of a grid or class sheet
    for start in starts:
        size = min(batch, n - start)
        y = labels_for(args, size, model.num_classes, labels) if sheet is None else (
            sheet[start : start + size])
        z, y = sample_noise(noise, size, model.z_dim, 0, torch.device("cpu"), classes=y)
        images = generate(G, z.to(device), None if y is None else y.to(device))
        problem = figures.non_finite(images)
        if problem:
            raise UserError(
                f"the generator of {path} has diverged: {problem} among samples {start} to "
                f"{start + size - 1}; use an earlier checkpoint ({start} images written)",
                exit_code=1)
        if args.n is None:
            kept.append(images)
            continue
        for i, pixels in enumerate(figures.to_uint8(images), start):
            file = out / f"sample-{i:05d}.png"
            try:
                Image.fromarray(pixels).save(file)
            except OSError as err:  # a full disk: name the file, leave no torn one
                file.unlink(missing_ok=True)
                raise OSError(err.errno, f"{err.strerror or err} ({i} of {n} images written)",
                              str(file)) from None
    if args.n is not None:
        return f"{n} images sample-*.png in {out} (from {path})"
    name = "class_sheet.png" if args.class_sheet else "grid.png"
    figures.grid(torch.cat(kept), args.columns).save(out / name)
    return f"{out / name} (from {path})"


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return run(PROG, lambda: print(f"wrote {draw(args)}"))


if __name__ == "__main__":
    sys.exit(main())
