r"""Reading your own images: an ImageNet-layout folder, decoded and resized with Pillow.

The layout is one subfolder per class (the subfolder's name is the class name, classes sorted by
name), images anywhere inside it:

    photos/
      cats/  a.jpg  b.png  more/c.jpg
      dogs/  d.jpeg ...

A folder with no subfolders but images at its top level is one class named after the folder.

Each image becomes an RGB $R \times R$ uint8 array:

- modes: CMYK, greyscale and palette images are converted to RGB; 16-bit greyscale, and 32-bit
  integer greyscale whose values stay within 16 bits, is scaled to 8 bits (values divided by
  257); floating-point greyscale (TIFF) in $[0, 1]$ is scaled by 255; other 32-bit images (values
  beyond 16 bits, negative, or floats outside $[0, 1]$ or not finite) have no known scale and are
  not used; images with an alpha channel (RGBA, LA, palette with transparency) are **composited
  on white**, so transparent pixels become white rather than whatever colour they happen to
  store;
- size: an image that would decode to more than `MAX_PIXELS` pixels is not used, checked from
  its header before any pixel is decoded (a decompression bomb: a small file of a huge image);
- orientation: the EXIF orientation tag is applied;
- geometry: the largest centred square is cropped and resized to $R$ with Lanczos filtering (up or
  down); an image whose shorter side is under `MIN_SIDE` pixels is not used;
- anything Pillow cannot decode (truncated or corrupt files, non-images with an image extension)
  raises `UnusableImage` with the reason, for the caller to report and skip.

`scan` lists what it skips with the reason: files without an image extension, and entries that
are no regular file (links to nothing, FIFOs, device files, sockets).
"""

from __future__ import annotations

import errno
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
MIN_SIDE = 8
WHITE = (255, 255, 255)
MAX_PIXELS = 2**25
"""The most pixels an image may decode to: 33.6 megapixels, e.g. 5792 x 5792. Decoding and
resizing one costs about 8 bytes a pixel (RGB) to 24 (with alpha), so at most 0.3 to 0.8 GB in
each of up to 8 decoding processes; a side of 5792 is 45 times the largest training resolution
(128), so a larger image adds memory, not detail. The size is read from the header, after JPEG's
reduced-scale decoding is chosen (a 50-megapixel photo decodes at 1/8 of its side), so a
decompression bomb costs nothing. Pillow's own limits (89 and 179 megapixels) are far higher."""
_MAX_SIDE = int(MAX_PIXELS**0.5)


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
            if path.is_dir() or any(_hidden(part) for part in path.relative_to(root).parts):
                continue
            if not path.is_file():
                skipped.append((path, _not_a_file(path)))
            elif path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(path)
            else:
                skipped.append((path, f"not an image file extension ({path.suffix or 'none'})"))
        if not found:
            skipped.append((class_dir, "class folder holds no image files"))
            continue
        files += [(path, len(names)) for path in found]
        names.append(class_dir.name)
    return names, files, skipped


def _not_a_file(path: Path) -> str:
    """Why `path`, neither a folder nor a regular file, is skipped."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        loops = error.errno == errno.ELOOP
        return "a link that loops" if loops else "a link to nothing (its target does not exist)"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    return "not a regular file (a socket or another special file)"


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise UnusableImage(
            f"too large: {width}x{height} is {width * height / 1e6:.0f} megapixels to decode, more "
            f"than the {MAX_PIXELS / 1e6:.1f} this loader decodes (a guard against decompression "
            f"bombs): shrink it to at most {_MAX_SIDE}x{_MAX_SIDE} pixels, or remove it"
        )


def _deep_grey(image: Image.Image) -> tuple[np.ndarray, str]:
    """8-bit pixels of a 16-bit, 32-bit integer or floating-point greyscale image, with the note
    saying how they were scaled; raises UnusableImage when the values have no known scale."""
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise UnusableImage(f"{image.mode} pixels include NaN or infinity: save the image with "
                            f"8 or 16 bits a channel")
    low, high = float(values.min()), float(values.max())
    if image.mode == "F":  # floating point: only [0, 1] has a known scale
        if low < 0 or high > 1:
            raise UnusableImage(
                f"floating-point pixels from {low:g} to {high:g}: only [0, 1] has a known scale; "
                f"save the image with 8 or 16 bits a channel"
            )
        return values * 255, "F (floating point in [0, 1]) scaled to 8 bits, to RGB"
    if low < 0 or high > 65535:  # Pillow's "I" is 32-bit; 16-bit files often load as "I" too
        raise UnusableImage(
            f"32-bit integer pixels from {low:.0f} to {high:.0f}, beyond the 16-bit range "
            f"[0, 65535] whose scale is known: save the image with 8 or 16 bits a channel"
        )
    bits = "" if image.mode.startswith("I;16") else " (values within 16 bits)"
    return values / 257, f"{image.mode}{bits} scaled to 8 bits, to RGB"


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
    if image.mode.startswith("I") or image.mode == "F":  # Pillow's convert would clip at 255
        grey, note = _deep_grey(image)
        return Image.fromarray(np.clip(grey, 0, 255).round().astype(np.uint8)).convert("RGB"), note
    return image.convert("RGB"), f"{image.mode} converted to RGB"


def load_image(path, resolution: int) -> tuple[np.ndarray, list[str]]:
    """Decode, centre-crop and resize one file: (uint8 (R, R, 3), notes); raises UnusableImage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is lower
            image = Image.open(path)
        with image:
            image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale
            _check_size(*image.size)  # before any pixel is decoded
            image = ImageOps.exif_transpose(image)
            image.load()
            rgb, note = _to_rgb(image)
    except UnusableImage:
        raise
    except Image.DecompressionBombError as error:  # over Pillow's own limit: not even opened
        raise UnusableImage(f"too large: {error}; shrink it to at most {_MAX_SIDE}x{_MAX_SIDE} "
                            f"pixels, or remove it") from None
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
