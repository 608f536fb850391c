r"""Reading your own images: an ImageNet-layout folder, decoded and resized with Pillow.

The layout is one subfolder per class (the subfolder's name is the class name, classes sorted by
name), images anywhere inside it:

    photos/
      cats/  a.jpg  b.png  more/c.jpg
      dogs/  d.jpeg ...

A folder with no subfolders but images at its top level is one class named after the folder.

Each image becomes an RGB $R \times R$ uint8 array:

- modes: CMYK, greyscale and palette images are converted to RGB, 16-bit greyscale is scaled to
  8 bits (values divided by 257); images with an alpha channel (RGBA, LA, palette with
  transparency) are **composited on white**, so transparent pixels become white rather than
  whatever colour they happen to store;
- orientation: the EXIF orientation tag is applied;
- geometry: the largest centred square is cropped and resized to $R$ with Lanczos filtering (up or
  down); an image whose shorter side is under `MIN_SIDE` pixels is not used;
- anything Pillow cannot decode (truncated or corrupt files, non-images with an image extension)
  raises `UnusableImage` with the reason, for the caller to report and skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
MIN_SIDE = 8
WHITE = (255, 255, 255)


class UnusableImage(Exception):
    """A file that cannot become a training image; the message says why."""


def _hidden(name: str) -> bool:
    return name.startswith(".")


def scan(root) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, str]]]:
    """List an ImageNet-layout folder: (class names, [(image path, label)], [(path, why skipped)]).

    Files without an image extension and class folders without any image files are listed as
    skipped; empty class folders are left out of the class names."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder: give a folder with one subfolder per class")
    entries = sorted(p for p in root.iterdir() if not _hidden(p.name))
    class_dirs = [p for p in entries if p.is_dir()]
    skipped = []
    if class_dirs:
        skipped += [(p, "not inside a class folder") for p in entries if not p.is_dir()]
    else:
        class_dirs = [root]  # a flat folder of images: one class
    names, files = [], []
    for class_dir in class_dirs:
        found = []
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or any(_hidden(part) for part in path.relative_to(root).parts):
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(path)
            else:
                skipped.append((path, f"not an image file extension ({path.suffix or 'none'})"))
        if not found:
            skipped.append((class_dir, "class folder holds no image files"))
            continue
        files += [(path, len(names)) for path in found]
        names.append(class_dir.name)
    return names, files, skipped


def _to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """RGB version of any mode, alpha composited on white; the note says what was converted."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), (
            f"{image.mode} with alpha composited on white"
        )
    if image.mode == "RGB":
        return image, None
    if image.mode.startswith("I"):  # 16/32-bit greyscale: read as 16-bit (Pillow would clip at 255)
        grey = np.clip(np.asarray(image, dtype=np.float64) / 257, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB"), f"{image.mode} scaled to 8 bits, to RGB"
    return image.convert("RGB"), f"{image.mode} converted to RGB"


def load_image(path, resolution: int) -> tuple[np.ndarray, list[str]]:
    """Decode, centre-crop and resize one file: (uint8 (R, R, 3), notes); raises UnusableImage."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale
            image = ImageOps.exif_transpose(image)
            image.load()
            rgb, note = _to_rgb(image)
    except Exception as error:  # Pillow raises many kinds on corrupt data; all mean "unusable".
        reason = str(error).strip() or type(error).__name__
        raise UnusableImage(f"cannot decode: {reason}") from None
    notes = [note] if note else []
    width, height = rgb.size
    side = min(width, height)
    if side < MIN_SIDE:
        raise UnusableImage(f"too small: {width}x{height}, shorter side under {MIN_SIDE} px")
    if side < resolution:
        notes.append(f"upscaled from {width}x{height}")
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.resize(
        (resolution, resolution), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
    )
    return np.asarray(square, dtype=np.uint8), notes
