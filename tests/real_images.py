"""Real photographs for data tests, cut from the images matplotlib ships (nothing downloaded)."""

import io

import numpy as np
from PIL import Image

SHIPPED = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")


def shipped(name: str) -> Image.Image | None:
    """One of matplotlib's sample images as RGB, or None where matplotlib is not installed."""
    try:
        from matplotlib import cbook
    except ImportError:
        return None
    with cbook.get_sample_data(name) as f:
        return Image.open(f).convert("RGB")


def photo(width: int = 64, height: int = 48, seed: int = 0, source: str = SHIPPED[0]):
    """A random crop of a shipped photograph, else a noisy Pillow gradient."""
    rng = np.random.default_rng(seed)
    image = shipped(source)
    if image is not None:
        w, h = image.width * 2 // 3, image.height * 2 // 3
        x, y = rng.integers(0, image.width - w), rng.integers(0, image.height - h)
        return image.crop((x, y, x + w, y + h)).resize((width, height))
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    noisy = ramp + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
