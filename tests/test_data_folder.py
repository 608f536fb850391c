"""Your own images: reading an ImageNet-layout folder and preparing it, broken files included."""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFile
from real_images import jpeg_bytes, photo

import accelerated.data.prepare as prepare_module
from accelerated.data import open_dataset
from accelerated.data.folder import MAX_PIXELS, UnusableImage, load_image, scan
from accelerated.data.prepare import OutputExists, main, prepare, prepare_cached

R = 16


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Good images of many modes, broken files, an empty class and stray files."""
    root = tmp_path / "images"
    photos, shapes, broken = root / "photos", root / "shapes", root / "broken"
    for folder in (photos, photos / "nested", shapes, broken, root / "empty"):
        folder.mkdir(parents=True)
    photo(seed=0).save(photos / "a.jpg")
    photo(30, 90, seed=1).save(photos / "nested" / "tall.png")
    photo(seed=2).convert("CMYK").save(photos / "cmyk.jpg")
    photo(10, 12, seed=3).save(photos / "small.png")  # upscaled
    (photos / "notes.txt").write_text("not an image")
    transparent = np.zeros((20, 20, 4), np.uint8)
    transparent[:, :10] = (255, 0, 0, 0)  # left half: invisible red
    transparent[:, 10:] = (0, 0, 255, 255)  # right half: opaque blue
    Image.fromarray(transparent, "RGBA").save(shapes / "rgba.png")
    photo(seed=4).convert("LA").save(shapes / "la.png")
    photo(seed=5).convert("P").save(shapes / "palette.png")
    photo(seed=6).convert("L").save(shapes / "grey.jpg")
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(shapes / "deep.png")
    whole = jpeg_bytes(photo(seed=7))
    (broken / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (broken / "text.png").write_text("this is not a PNG")
    Image.new("RGB", (1, 1)).save(broken / "dot.png")
    Image.new("RGB", (5, 40)).save(broken / "sliver.png")
    (broken / "zero.jpg").write_bytes(b"")
    (root / "README.txt").write_text("stray file")
    return root


def reasons(report: dict) -> dict[str, str]:
    return {Path(s["path"]).name: s["reason"] for s in report["skipped"]}


def test_scan_lists_classes_images_and_stray_files(image_folder):
    names, files, skipped = scan(image_folder)
    assert names == ["broken", "photos", "shapes"]  # "empty" has no image files
    assert len(files) == 4 + 5 + 5
    why = {p.name: r for p, r in skipped}
    assert why["README.txt"] == "not inside a class folder"
    assert "extension" in why["notes.txt"] and "no image files" in why["empty"]


def test_prepare_converts_what_it_can_and_reports_the_rest(image_folder, tmp_path):
    out = tmp_path / "prepared"
    report = prepare(image_folder, out, R, progress=False)
    assert report["classes"] == {"photos": 4, "shapes": 5}
    assert report["dropped_classes"] == ["broken"]  # none of its files was usable
    why = reasons(report)
    for name in ("truncated.jpg", "text.png", "zero.jpg"):
        assert why[name].startswith("cannot decode")
    assert why["dot.png"].startswith("too small") and why["sliver.png"].startswith("too small")
    notes = {Path(n["path"]).name: n["note"] for n in report["notes"]}
    assert notes["cmyk.jpg"] == "CMYK converted to RGB"
    assert "upscaled" in notes["small.png"] and "alpha" in notes["rgba.png"]
    assert json.loads((out / "report.json").read_text()) == report
    data = open_dataset(str(out), R)
    assert len(data) == 9 and data.class_names == ["photos", "shapes"]
    assert data.images.shape == (9, R, R, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0] * 4 + [1] * 5
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial folder left


def test_pixels_alpha_on_white_greyscale_and_16_bit(image_folder, tmp_path):
    rgba, _ = load_image(image_folder / "shapes" / "rgba.png", R)
    assert (rgba[:, :7] == 255).all()  # transparent red became white
    assert (rgba[:, 9:] == (0, 0, 255)).all()
    grey, _ = load_image(image_folder / "shapes" / "grey.jpg", R)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    deep, _ = load_image(image_folder / "shapes" / "deep.png", R)
    assert (deep == round(40000 / 257)).all()


def test_workers_give_the_same_result(image_folder, tmp_path):
    prepare(image_folder, tmp_path / "one", R, workers=0, progress=False)
    prepare(image_folder, tmp_path / "two", R, workers=2, progress=False)
    a, b = np.load(tmp_path / "one" / "images.npy"), np.load(tmp_path / "two" / "images.npy")
    assert np.array_equal(a, b)


def test_nothing_usable_is_an_error_and_leaves_nothing(tmp_path):
    (tmp_path / "src" / "cls").mkdir(parents=True)
    (tmp_path / "src" / "cls" / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ValueError, match="nothing usable"):
        prepare(tmp_path / "src", tmp_path / "out", R, progress=False)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="no image files"):
        prepare(tmp_path / "empty", tmp_path / "out", R, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "src"]


def test_existing_output_is_refused(image_folder, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        prepare(image_folder, tmp_path / "out", R, progress=False)


def test_cli_prints_one_line_and_exits_nonzero_on_errors(image_folder, tmp_path, capsys):
    assert main([str(image_folder), str(tmp_path / "out"), "--resolution", "16",
                 "--workers", "0"]) == 0
    assert capsys.readouterr().out.startswith("prepared 9 images in 2 classes at 16x16")
    assert main([str(tmp_path / "missing"), str(tmp_path / "o2"), "--workers", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0] and "not a folder" in err[0]


def test_raw_folder_is_prepared_once_into_the_cache(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = open_dataset(str(image_folder), R, cache_dir="~/cache")
    assert len(data) == 9 and data.num_classes == 2
    cache = tmp_path / "home" / "cache" / "data"
    first = prepare_cached(image_folder, R, cache)
    assert list(cache.iterdir()) == [first]  # re-used, not prepared again
    photo(seed=9).save(image_folder / "shapes" / "new.png")
    second = prepare_cached(image_folder, R, cache)
    assert second != first and len(open_dataset(str(image_folder), R, cache_dir="~/cache")) == 10


def test_a_concurrent_prepare_of_the_same_cache_entry_is_tolerated(
    image_folder, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    winner = prepare_cached(image_folder, R, tmp_path / "other")  # another process's result
    write = prepare_module._write

    def finish_second(src, tmp, *args):  # the other process renames its copy in first
        report = write(src, tmp, *args)
        shutil.copytree(winner, cache / winner.name)
        return report

    monkeypatch.setattr(prepare_module, "_write", finish_second)
    with pytest.raises(OutputExists):
        prepare(image_folder, cache / winner.name, R, progress=False)
    shutil.rmtree(cache)
    assert prepare_cached(image_folder, R, cache) == cache / winner.name
    assert [p.name for p in cache.iterdir()] == [winner.name]  # no work folder left behind


def test_work_folders_of_dead_processes_are_cleared(image_folder, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f".out.partial-{int(dead.stdout)}"
    stale.mkdir()
    (stale / "images.npy").write_bytes(b"half written")
    prepare(image_folder, tmp_path / "out", R, progress=False)
    assert not stale.exists() and (tmp_path / "out" / "meta.json").is_file()


def test_single_flat_folder_is_one_class(tmp_path):
    for i in range(3):
        photo(seed=i).save(tmp_path / f"{i}.png")
    names, files, skipped = scan(tmp_path)
    assert names == [tmp_path.name] and len(files) == 3 and not skipped


def mangled(seed_bytes: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    data = bytearray(seed_bytes[: max(1, int(len(seed_bytes) * cut))])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    return bytes(data)


PNG = io.BytesIO()
Image.new("RGB", (12, 10), (10, 200, 30)).save(PNG, "PNG")
bad_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(
        mangled,
        st.sampled_from([PNG.getvalue(), jpeg_bytes(Image.new("RGB", (12, 10), (200, 5, 5)))]),
        st.floats(0.0, 1.0),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
    ),
)


@given(data=bad_bytes, extension=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".webp"]))
def test_random_bytes_never_crash_prepare(data, extension):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src" / "cls"
        src.mkdir(parents=True)
        Image.new("RGB", (12, 12), (0, 0, 255)).save(src / "good.png")
        (src / f"bad{extension}").write_bytes(data)
        try:
            pixels, _ = load_image(src / f"bad{extension}", R)
            assert pixels.shape == (R, R, 3) and pixels.dtype == np.uint8
            usable = True
        except UnusableImage:
            usable = False
        report = prepare(src.parent, Path(tmp) / "out", R, progress=False)
        assert report["converted"] == 1 + usable
        expected_skips = [] if usable else [f"bad{extension}"]
        assert [Path(s["path"]).name for s in report["skipped"]] == expected_skips


def test_cache_key_of_a_folder_with_dangling_and_looping_links(tmp_path):
    """Such links are skipped by prepare; the key of the folder must not fail on them."""
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    (tmp_path / "cat" / "gone.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "cat" / "loop.png").symlink_to(tmp_path / "cat" / "loop.png")
    key = prepare_module.cache_key(tmp_path, 16)
    assert key == prepare_module.cache_key(tmp_path, 16) and len(key) == 16


def black_png(path: Path, width: int, height: int) -> None:
    """A valid 1-bit black PNG written row by row: a huge image in a small file, made without
    holding the image in memory (13300 x 13300 takes 22 KB and a fraction of a second)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    row, packer = bytes(1 + (width + 7) // 8), zlib.compressobj(9)  # filter byte, then pixels
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    """13300 x 13300 is under Pillow's own limit: decoded, it took 1.3 GB per data worker."""
    (tmp_path / "src" / "cls").mkdir(parents=True)
    bomb = tmp_path / "src" / "cls" / "bomb.png"
    black_png(bomb, 13300, 13300)
    assert bomb.stat().st_size < 100_000 and 13300**2 > MAX_PIXELS
    photo(seed=0).save(tmp_path / "src" / "cls" / "good.png")
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda image: decoded.append(image.size) or load(image))
    with pytest.raises(UnusableImage, match=r"^too large: 13300x13300 is 177 megapixels"):
        load_image(bomb, R)
    assert decoded == []  # refused before a single row was decoded
    report = prepare(tmp_path / "src", tmp_path / "out", R, progress=False)
    assert report["converted"] == 1
    assert reasons(report)["bomb.png"].endswith("shrink it to at most 5792x5792 pixels, or "
                                                "remove it")
    small = tmp_path / "small.png"
    black_png(small, 5792, 5792)  # at the limit: used
    assert load_image(small, R)[0].max() == 0


def test_deep_greyscale_is_scaled_or_refused_and_the_report_says_which(tmp_path):
    """Float TIFFs were black and 32-bit images clipped, reported only as "converted"."""
    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    ramp = np.linspace(0, 1, R * R, dtype=np.float32).reshape(R, R)
    Image.fromarray(ramp, "F").save(src / "float.tif")
    Image.fromarray((ramp * 65535).astype(np.int32), "I").save(src / "int32-in-16-bits.tif")
    Image.fromarray(ramp * 1000, "F").save(src / "float-large.tif")
    Image.fromarray(np.where(ramp > 0.5, np.nan, ramp), "F").save(src / "float-nan.tif")
    full = np.arange(R * R, dtype=np.int32).reshape(R, R) * 8_000_000  # up to 2,040,000,000
    Image.fromarray(full, "I").save(src / "int32-full.tif")
    report = prepare(tmp_path / "src", tmp_path / "out", R, progress=False)
    pixels = np.load(tmp_path / "out" / "images.npy")
    expected = np.round(ramp * 255)
    # the two usable images, in name order: float.tif, int32-in-16-bits.tif
    assert np.abs(pixels[0, ..., 0] - expected).max() <= 1
    assert np.abs(pixels[1, ..., 0] - expected).max() <= 1
    notes = {Path(n["path"]).name: n["note"] for n in report["notes"]}
    assert notes == {"float.tif": "F (floating point in [0, 1]) scaled to 8 bits, to RGB",
                     "int32-in-16-bits.tif": "I (values within 16 bits) scaled to 8 bits, to RGB"}
    why = reasons(report)
    assert why["float-large.tif"].startswith("floating-point pixels from 0 to 1000: only [0, 1]")
    assert why["float-nan.tif"].startswith("F pixels include NaN or infinity")
    assert why["int32-full.tif"].startswith("32-bit integer pixels from 0 to 2040000000, beyond")
    assert all(w.endswith("save the image with 8 or 16 bits a channel") for w in why.values())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need a POSIX system")
def test_links_to_nothing_fifos_and_devices_are_in_the_report(tmp_path):
    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    photo(seed=0).save(src / "good.png")
    (src / "gone.png").symlink_to(tmp_path / "missing.png")
    (src / "loop.png").symlink_to(src / "loop.png")
    os.mkfifo(src / "pipe.png")  # opening it to decode would wait forever for a writer
    (src / "null.png").symlink_to(os.devnull)
    report = prepare(tmp_path / "src", tmp_path / "out", R, progress=False)
    assert report["converted"] == 1
    assert reasons(report) == {"gone.png": "a link to nothing (its target does not exist)",
                               "loop.png": "a link that loops",
                               "pipe.png": "a FIFO, not a regular file",
                               "null.png": "a device file, not a regular file"}


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs): mounting it needs root, so elsewhere the test skips."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_not_a_bus_error(small_disk, tmp_path):
    """The images' memory map is a sparse file: filling it on a full disk was SIGBUS (no message;
    training from a raw folder died the same way). Its blocks are reserved first now."""
    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    for i in range(10):
        photo(16, 16, seed=i).save(src / f"{i}.png")  # 2 MB at 256 x 256
    done = subprocess.run([sys.executable, "-m", "accelerated.data.prepare", str(src.parent),
                           str(small_disk / "out"), "--resolution", "256", "--workers", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith("python -m accelerated.data.prepare: error: [Errno 28] No space left "
                           "on device: the images need 2.0 MB")
    assert line.endswith("images.npy'") and list(small_disk.iterdir()) == []
