"""Generated bad input to every command line and to the data readers: each fails cleanly.

Hypothesis drives the `main(argv)` of `accelerated.train`, `accelerated.sample`,
`accelerated.evaluate` and `accelerated.data.prepare` (in this process) with bad flags, values,
settings, config files, data folders, run folders and checkpoints, and the readers of prepared
arrays and of image files with damaged files. A clean failure is a non-zero exit status (2 for a
bad command line or setting), exactly one error line and no traceback; and a sentinel (a
finished run's folder with checkpoints, samples and logs, beside which the runs would go) is
byte-identical afterwards, with nothing added.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import pickletools
import re
import shutil
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from accelerated import checkpoint, evaluate, sample, train
from accelerated import config as C
from accelerated.data import arrays
from accelerated.data import prepare as data_prepare
from accelerated.data.folder import UnusableImage, load_image
from accelerated.models.architectures import ARCHITECTURES

# The fault suite (with test_faults_kill.py) runs in the full suite, not the quick tier.
pytestmark = pytest.mark.slow
FIELDS = {f.path: f for f in C.fields_of()}
IMAGE_SUFFIXES = [".png", ".jpg", ".bmp", ".gif", ".ppm", ".tiff", ".webp"]


# ---------------------------------------------------------------------------------------------
# Running a CLI and judging its failure


def call(main, argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `main(argv)`, SystemExit included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(result, codes) -> None:
    """A non-zero status among `codes`, no traceback, and exactly one error line (besides
    warnings about skipped files and progress bars)."""
    code, _, err = result
    assert code in codes, f"exit {code}, wanted {codes}:\n{err}"
    assert "Traceback" not in err, err
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip()
             and not line.startswith("warning:") and not re.match(r"prepare: +\d+%", line)]
    assert len(lines) == 1 and "error" in lines[0], err


def tree(root: Path) -> dict[str, str | None]:
    """Every file (a hash of its bytes) and folder (None) under `root`."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else None for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def scratch(place):
    """A fresh folder for one example's generated files, removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=place.scratch))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@contextlib.contextmanager
def world_size(n: int | None):
    """WORLD_SIZE=n in the environment for a while (None: as it is)."""
    old = os.environ.get("WORLD_SIZE")
    if n is not None:
        os.environ["WORLD_SIZE"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = old


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A sentinel run (tiny, 2 steps, everything written) in `runs`, and folders for the rest."""
    base = tmp_path_factory.mktemp("fuzz")
    runs, cache, scratch_dir = base / "runs", base / "cache", base / "scratch"
    scratch_dir.mkdir()
    code, _, err = call(train.main, [
        "--preset", "tiny", "--run.steps", "2", "--run.checkpoint_every", "1",
        "--run.sample_every", "1", "--run.eval_metrics", "none", "--run.best_metric", "score",
        "--data.cache_dir", str(cache), "--run.out_dir", str(runs), "--run.name", "sentinel"])
    assert code == 0, err
    return Place(runs, cache, scratch_dir)


class Place:
    """Where the fuzz tests work: the sentinel run, and what its folder held at the start."""

    def __init__(self, runs: Path, cache: Path, scratch: Path):
        self.runs, self.cache, self.scratch = runs, cache, scratch
        self.sentinel = runs / "sentinel"
        self.checkpoints = checkpoint.list_checkpoints(self.sentinel)
        self.before = tree(runs)

    def __repr__(self) -> str:
        return f"Place({self.runs.parent})"


def assert_nothing_changed(place) -> None:
    assert tree(place.runs) == place.before, "the sentinel run folder changed"


# ---------------------------------------------------------------------------------------------
# Strategies: bad values of every kind


def rejected(value, kind) -> bool:
    """Whether a flag's text (or a TOML file's value) is refused for a field of type `kind`."""
    try:
        (C.parse_flag if isinstance(value, str) else C.check)(value, kind, "x")
    except C.ConfigError:
        return True
    return False


# Fields some text is wrong for (not str, nor str | None, which take any text).
TYPED = [f for f in FIELDS.values() if rejected("?!", f.type)]


def ints_below(n: int):
    return st.integers(min_value=-(10**12), max_value=n - 1)


def floats_outside(low: float, high: float):
    """Floats not in [low, high) (nan and infinities included)."""
    return st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not low <= x < high)


NOT_POSITIVE_FINITE = st.floats(allow_nan=True).filter(lambda x: not 0 < x < math.inf)
OUT_OF_RANGE = {
    "optim.batch_size": ints_below(1), "optim.lr_g": NOT_POSITIVE_FINITE,
    "optim.lr_d": NOT_POSITIVE_FINITE, "optim.beta1": floats_outside(0, 1),
    "optim.beta2": floats_outside(0, 1), "optim.eps": NOT_POSITIVE_FINITE,
    "optim.d_steps": ints_below(1), "optim.ema_decay": floats_outside(0, 1),
    "optim.ema_start": ints_below(0), "run.steps": ints_below(1),
    "run.seed": st.one_of(ints_below(0), st.integers(min_value=2**63)),
    "run.log_every": ints_below(1), "run.sample_every": ints_below(1),
    "run.eval_every": ints_below(1), "run.checkpoint_every": ints_below(1),
    "run.eval_samples": ints_below(1), "run.grid_columns": ints_below(1),
    "run.keep_checkpoints": ints_below(1), "run.max_bad_steps": ints_below(1),
    "run.max_rollbacks": ints_below(0), "data.workers": ints_below(0),
    "model.resolution": st.integers().filter(lambda r: r not in ARCHITECTURES),
    "model.num_classes": ints_below(0), "model.z_dim": ints_below(1),
    "model.g_ch": ints_below(1), "model.d_ch": ints_below(1),
    "model.attention_block": st.text(max_size=12).filter(
        lambda v: v not in ("attention", "residual")),
    "model.attention_variant": st.text(max_size=12).filter(
        lambda v: v not in ("official", "paper")),
    "run.device": st.text(max_size=8).filter(
        lambda v: v not in ("auto", "cpu") and (v != "cuda" or not torch.cuda.is_available())),
    "run.name": st.one_of(st.sampled_from([".", ".."]),
                          st.tuples(st.text(max_size=4), st.text(max_size=4)).map("/".join)),
}


@st.composite
def unknown_flag(draw):
    flag = draw(st.from_regex(r"--[a-z][a-z_.]{0,15}", fullmatch=True).filter(
        lambda f: f[2:] not in FIELDS and f not in ("--preset", "--config", "--resume", "--help")))
    return [flag, draw(st.text(max_size=6))]


@st.composite
def wrong_type(draw):
    info = draw(st.sampled_from(TYPED))
    return [f"--{info.path}", draw(st.text(max_size=10).filter(lambda v: rejected(v, info.type)))]


@st.composite
def out_of_range(draw):
    path = draw(st.sampled_from(sorted(p for p in OUT_OF_RANGE if p in FIELDS)))
    value = draw(OUT_OF_RANGE[path])
    return [f"--{path}", value if isinstance(value, str) else repr(value)]


@st.composite
def impossible(draw):
    """Settings each valid alone that cannot run together (tiny: 16x16, G maps 8 and 16, D maps
    8 and 4, 4 classes, 10,000 images)."""
    kind = draw(st.sampled_from(["g size", "d size", "twice", "width", "classes", "batch"]))
    sizes = st.lists(st.integers(1, 64), min_size=1, max_size=3)
    if kind == "g size":
        bad = draw(sizes.filter(lambda s: any(x not in (8, 16) for x in s)))
        return ["--model.g_attention", ",".join(map(str, bad))]
    if kind == "d size":
        bad = draw(sizes.filter(lambda s: any(x not in (8, 4) for x in s)))
        return ["--model.d_attention", ",".join(map(str, bad))]
    if kind == "twice":
        return ["--model.g_attention", "8,8"]
    if kind == "width":  # 4 x g_ch channels at 8x8: self-attention needs a multiple of 8
        return ["--model.g_attention", "8", "--model.g_ch", str(draw(st.integers(0, 20)) * 2 + 1)]
    if kind == "classes":
        return ["--model.num_classes", str(draw(st.integers(1, 40).filter(lambda k: k != 4)))]
    return ["--optim.batch_size", str(draw(st.integers(10_001, 10**9)))]


def garbage_bytes(max_size: int = 300):
    return st.one_of(st.binary(max_size=max_size), st.text(max_size=max_size).map(str.encode))


# Random pickle opcodes with random operands: what torch.load's legacy (non-zip) path unpickles.
PICKLE_OPCODES = sorted({op.code.encode("latin-1") for op in pickletools.opcodes})
pickle_soup = st.lists(st.tuples(st.sampled_from(PICKLE_OPCODES), st.binary(max_size=4)),
                       max_size=12).map(lambda ops: b"".join(code + arg for code, arg in ops))


# ---------------------------------------------------------------------------------------------
# train: command lines


@pytest.mark.parametrize("kind", ["unknown flag", "wrong type", "out of range", "impossible",
                                  "ranks", "existing run"])
@settings(max_examples=12)
@given(data=st.data())
def test_train_refuses_bad_command_lines_cleanly(place, fault_tally, kind, data):
    base = ["--preset", "tiny", "--run.out_dir", str(place.runs),
            "--data.cache_dir", str(place.cache)]
    ranks = None
    if kind == "ranks":  # batch_size not divisible by torchrun's number of ranks
        ranks = data.draw(st.integers(2, 16))
        batch = data.draw(st.integers(1, 10_000).filter(lambda b: b % ranks))
        bad = ["--optim.batch_size", str(batch)]
    elif kind == "existing run":
        bad = ["--run.name", "sentinel"]
    else:
        bad = data.draw({"unknown flag": unknown_flag(), "wrong type": wrong_type(),
                         "out of range": out_of_range(), "impossible": impossible()}[kind])
    with world_size(ranks):
        result = call(train.main, [*base, *bad])
    assert_clean_failure(result, {2})
    assert_nothing_changed(place)
    fault_tally.bad_input("train command lines")


# ---------------------------------------------------------------------------------------------
# train: config files, data folders, run folders


def toml_value(value) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are TOML too


@st.composite
def bad_toml(draw):
    """Text that is not TOML, or TOML with an unknown section or key or a value of the wrong
    type. (Text that parses, e.g. a comment, is turned into a wrong-type setting.)"""
    kind = draw(st.sampled_from(["text", "binary", "unknown key", "unknown section",
                                 "wrong type", "not a section"]))
    if kind == "text":
        text = draw(st.text(max_size=80))
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return text.encode()
        kind = "wrong type"
    if kind == "binary":
        return b"\xff\xfe[model]\n" + draw(st.binary(max_size=40))
    if kind == "unknown key":
        section = draw(st.sampled_from(["model", "data", "optim", "run"]))
        key = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
            lambda k: f"{section}.{k}" not in FIELDS))
        return f"[{section}]\n{key} = 1\n".encode()
    if kind == "unknown section":
        section = draw(st.from_regex(r"[a-z]{1,10}", fullmatch=True).filter(
            lambda s: s not in ("model", "data", "optim", "run")))
        return f"[{section}]\nx = 1\n".encode()
    if kind == "not a section":
        return f"model = {toml_value(draw(st.integers()))}\n".encode()
    info = draw(st.sampled_from(TYPED))
    value = draw(st.one_of(st.text(max_size=8), st.lists(st.text(max_size=3), max_size=2))
                 .filter(lambda v: rejected(v, info.type)))
    section, key = info.path.split(".")
    return f"[{section}]\n{key} = {toml_value(value)}\n".encode()


@st.composite
def image_folder(draw, folder: Path) -> None:
    """1 to 3 class folders of files that are not usable images (garbage, truncated, tiny),
    or none at all: never 4 classes of images, which the tiny preset would train on."""
    for k in range(draw(st.integers(0, 3))):
        (folder / f"class{k}").mkdir()
        for i in range(draw(st.integers(0, 3))):
            name = f"f{i}{draw(st.sampled_from([*IMAGE_SUFFIXES, '.txt', '']))}"
            (folder / f"class{k}" / name).write_bytes(draw(st.binary(max_size=16)))


@pytest.mark.parametrize("kind", ["config file", "data folder"])
@settings(max_examples=12)
@given(data=st.data())
def test_train_refuses_bad_config_files_and_data_folders_cleanly(place, fault_tally, kind, data):
    base = ["--preset", "tiny", "--run.out_dir", str(place.runs),
            "--data.cache_dir", str(place.cache), "--run.name", "new"]
    with scratch(place) as folder:
        what = data.draw(st.sampled_from(["missing", "a folder", "a file"]
                                         if kind == "config file" else
                                         ["missing", "a file", "images"]))
        path = folder / "input"
        if what == "a folder" or what == "images":
            path.mkdir()
            if what == "images":
                data.draw(image_folder(path))
        elif what == "a file":
            path.write_bytes(data.draw(bad_toml() if kind == "config file" else garbage_bytes()))
        flag = "--config" if kind == "config file" else "--data.source"
        before = tree(folder)
        assert_clean_failure(call(train.main, [*base, flag, str(path)]), {2})
        assert tree(folder) == before
    assert_nothing_changed(place)
    fault_tally.bad_input("config files" if kind == "config file" else "data folders")


TRAINING_STATE = ("G", "D", "G_ema", "opt_G", "opt_D", "rng", "counters", "config")
GENERATOR_STATE = ("G_ema", "config")  # what sample and evaluate take from a checkpoint


def damaged_checkpoint(data, place, step: int, needed=TRAINING_STATE):
    """Bytes of a checkpoint file that cannot be used: garbage, a truncated real one, a torch
    file that is not a dict, or a checkpoint with one of the `needed` entries missing or wrong
    (a missing G_ema means no EMA, which is fine: it is made wrong instead)."""
    kind = data.draw(st.sampled_from(["garbage", "pickle", "truncated", "not a dict", "entry"]))
    real = place.checkpoints[-1].read_bytes()
    if kind in ("garbage", "pickle"):
        return data.draw(garbage_bytes(2000) if kind == "garbage" else pickle_soup)
    if kind == "truncated":
        return real[: data.draw(st.integers(0, len(real) - 1))]
    buffer = io.BytesIO()
    if kind == "not a dict":
        torch.save(data.draw(st.lists(st.integers(), max_size=3)), buffer)
    else:
        state = checkpoint.load(place.checkpoints[-1])
        state["step"] = step
        key = data.draw(st.sampled_from(needed))
        if key != "G_ema" and data.draw(st.booleans()):
            del state[key]
        else:
            state[key] = data.draw(st.integers())
        torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["override", "config.json", "checkpoints"])
@settings(max_examples=10)
@given(data=st.data())
def test_resume_refuses_damaged_runs_and_bad_overrides_cleanly(place, fault_tally, kind, data):
    if kind == "override":  # the sentinel itself, with settings it cannot continue under
        bad, code = data.draw(st.sampled_from([
            (["--preset", "tiny"], 2), (["--optim.ema", "false"], 1),
            (["--model.g_ch", "8"], 1), (["--model.z_dim", "7"], 1),
            (["--run.steps", "0"], 2), (["--model.g_attention", "4"], 2)]))
        assert_clean_failure(call(train.main, ["--resume", str(place.sentinel), *bad]), {code})
    else:
        with scratch(place) as run_dir:
            shutil.copy(place.sentinel / "config.json", run_dir)
            if kind == "config.json":
                text = data.draw(st.one_of(
                    garbage_bytes(),
                    st.sampled_from(["[]", "{\"model\": 3}", "{\"model\": {\"g_ch\": -1}}",
                                     "{\"optim\": {\"lr_d\": \"fast\"}}", "null"]).map(str.encode)))
                (run_dir / "config.json").write_bytes(text)
                code = {2}
            else:
                for step in range(data.draw(st.integers(1, 3))):
                    checkpoint.path_for(run_dir, step).parent.mkdir(exist_ok=True)
                    checkpoint.path_for(run_dir, step).write_bytes(
                        damaged_checkpoint(data, place, step))
                code = {1}
            before = tree(run_dir)
            assert_clean_failure(call(train.main, ["--resume", str(run_dir)]), code)
            after = tree(run_dir)
            assert {k: v for k, v in after.items() if k in before} == before
    assert_nothing_changed(place)
    fault_tally.bad_input("run folders and checkpoints" if kind != "override" else
                          "resume overrides")


# ---------------------------------------------------------------------------------------------
# sample and evaluate


SHEET = "--class-sheet"
SAMPLE_BAD = [["--n", "0"], ["--n", "-3"], ["--columns", "0"], ["--class", "4"],
              ["--class", "-1"], [SHEET, "--classes", "x,y"], [SHEET, "--classes", "0,9"],
              [SHEET, "--classes", ","],
              ["--seed", "-1"], ["--seed", str(2**64)], ["--device", "tpu"], ["--n", "1.5"],
              ["--grid", "--n", "3"]]
EVALUATE_BAD = [["--num-samples", "1"], ["--batch-size", "0"], ["--reference-samples", "1"],
                ["--inception-weights", "w.pth"], ["--metrics", "vgg"], ["--seed", "x"],
                ["--device", "tpu"], ["--data", "/nonexistent/data"]]


@pytest.mark.parametrize("kind", ["option", "unknown flag", "checkpoint", "output"])
@pytest.mark.parametrize("cli", ["sample", "evaluate"])
@settings(max_examples=8)
@given(data=st.data())
def test_sample_and_evaluate_refuse_bad_input_cleanly(place, fault_tally, cli, kind, data):
    main = sample.main if cli == "sample" else evaluate.main
    with scratch(place) as folder:
        # sample writes into the folder --out, evaluate writes the file --out
        out = folder / ("out" if cli == "sample" else "results.json")
        source, code = str(place.sentinel), {2}
        extra = ["--cache-dir", str(place.cache)] if cli == "evaluate" else []
        if kind == "option":
            extra += data.draw(st.sampled_from(SAMPLE_BAD if cli == "sample" else EVALUATE_BAD))
        elif kind == "unknown flag":
            extra += data.draw(unknown_flag())
        elif kind == "checkpoint":
            what = data.draw(st.sampled_from(["missing", "file", "run folder", "empty folder"]))
            source = folder / "ckpt"
            if what == "file":
                source.write_bytes(damaged_checkpoint(data, place, 2, GENERATOR_STATE))
            elif what == "run folder":
                checkpoint.path_for(source, 1).parent.mkdir(parents=True)
                checkpoint.path_for(source, 1).write_bytes(
                    damaged_checkpoint(data, place, 1, GENERATOR_STATE))
            elif what == "empty folder":
                source.mkdir()
        else:  # an output that cannot be written: under a file of the sentinel
            out, code = place.sentinel / "config.json" / out.name, {1}
        before = tree(folder)
        result = call(main, [str(source), "--out", str(out), *extra])
        assert_clean_failure(result, code)
        assert tree(folder) == before
    assert_nothing_changed(place)
    fault_tally.bad_input(f"{cli} command lines")


# ---------------------------------------------------------------------------------------------
# data.prepare


@pytest.mark.parametrize("kind", ["usage", "resolution", "source", "output exists",
                                  "output under a file"])
@settings(max_examples=6)
@given(data=st.data())
def test_prepare_refuses_bad_input_cleanly(place, fault_tally, kind, data):
    with scratch(place) as folder:
        src, out, options, code = folder / "src", folder / "out", ["--workers", "0"], {1}
        src.mkdir()
        if kind == "usage":
            argv = data.draw(st.sampled_from([[], [str(src)], [str(src), str(out), "--bogus"],
                                              [str(src), str(out), "--resolution", "big"],
                                              [str(src), str(out), "--workers", "1.5"]]))
            code = {2}
        else:
            if kind == "resolution":
                options += ["--resolution", str(data.draw(ints_below(8)))]
            elif kind == "source":
                what = data.draw(st.sampled_from(["missing", "a file", "images"]))
                if what == "missing":
                    src = folder / "missing"
                elif what == "a file":
                    src = folder / "file"
                    src.write_bytes(data.draw(garbage_bytes()))
                else:
                    data.draw(image_folder(src))
            elif kind == "output exists":
                out = place.sentinel
            else:
                out = place.sentinel / "config.json" / "data"
            argv = [str(src), str(out), *options]
        before = tree(folder)
        assert_clean_failure(call(data_prepare.main, argv), code)
        assert tree(folder) == before
    assert_nothing_changed(place)
    fault_tally.bad_input("prepare command lines")


# ---------------------------------------------------------------------------------------------
# The readers: checkpoints, prepared arrays and image files


@settings(max_examples=150)
@given(content=st.one_of(garbage_bytes(), pickle_soup))
def test_checkpoint_reader_reports_any_damaged_file_as_one_error(place, fault_tally, content):
    with scratch(place) as folder:
        path = checkpoint.path_for(folder, 3)
        path.parent.mkdir()
        path.write_bytes(content)
        with pytest.raises(checkpoint.CheckpointError) as err:
            checkpoint.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        if isinstance(err.value, checkpoint.DamagedCheckpoint):  # skipped for an older one
            warnings = []
            with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
                checkpoint.latest(folder, warn=warnings.append)
            assert len(warnings) == 1
        assert path.read_bytes() == content
    fault_tally.bad_input("checkpoint files")


@st.composite
def damaged_arrays(draw, folder: Path) -> None:
    """A prepared folder (6 images, 8x8, classes a b c) with one of its files damaged."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    images = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    arrays.save_arrays(folder, images, rng.integers(0, 3, 6), ["a", "b", "c"], source="test")
    kind = draw(st.sampled_from(["garbage", "truncated", "removed", "other array", "meta"]))
    names = [arrays.IMAGES, arrays.LABELS] + ([arrays.META] if kind != "other array" else [])
    path = folder / draw(st.sampled_from(names))
    if kind == "garbage":
        path.write_bytes(draw(garbage_bytes()))
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: draw(st.integers(0, path.stat().st_size - 1))])
    elif kind == "removed":
        path.unlink()
    elif kind == "other array":
        dtype = draw(st.sampled_from([np.uint8, np.int64, np.float32, np.int16]))
        shape = draw(st.lists(st.integers(0, 9), max_size=4))
        np.save(path, rng.integers(-5, 300, shape).astype(dtype))
    else:
        meta = json.loads((folder / arrays.META).read_text())
        key = draw(st.sampled_from(sorted(meta)))
        meta[key] = draw(st.one_of(st.none(), st.integers(-2, 300), st.text(max_size=5),
                                   st.lists(st.integers(), max_size=2)))
        (folder / arrays.META).write_text(json.dumps(meta))


@given(data=st.data())
def test_array_reader_refuses_damaged_folders_cleanly(place, fault_tally, data):
    with scratch(place) as folder:
        data.draw(damaged_arrays(folder))
        before = tree(folder)
        try:
            dataset = arrays.open_arrays(folder, 8)
        except ValueError as err:
            message = str(err)
            assert "\n" not in message and str(folder) in message
        else:  # the damage left a usable data set (e.g. an unused meta field): it must read
            assert all(torch.isfinite(dataset[i][0]).all() for i in range(len(dataset)))
            del dataset
        assert tree(folder) == before
    fault_tally.bad_input("prepared array folders")


@st.composite
def bad_image(draw) -> bytes:
    """Garbage, or a real image (PNG, JPEG, GIF, BMP) truncated or with bytes overwritten."""
    kind = draw(st.sampled_from(["garbage", "truncated", "overwritten"]))
    if kind == "garbage":
        return draw(garbage_bytes())
    buffer = io.BytesIO()
    side = draw(st.integers(1, 24))
    Image.new("RGB", (side, side + 3), (200, 10, 90)).save(
        buffer, format=draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP"])))
    real = bytearray(buffer.getvalue())
    if kind == "truncated":
        return bytes(real[: draw(st.integers(0, len(real) - 1))])
    at = draw(st.integers(0, len(real) - 1))
    patch = draw(st.binary(min_size=1, max_size=16))
    real[at : at + len(patch)] = patch
    return bytes(real)


@given(content=bad_image(), suffix=st.sampled_from(IMAGE_SUFFIXES), resolution=st.integers(8, 32))
def test_image_reader_refuses_damaged_files_cleanly(place, fault_tally, content, suffix,
                                                   resolution):
    with scratch(place) as folder:
        path = folder / f"image{suffix}"
        path.write_bytes(content)
        try:
            pixels, _ = load_image(path, resolution)
        except UnusableImage as err:
            assert str(err) and "\n" not in str(err)
        else:  # a change that left the image decodable gives a proper image
            assert pixels.dtype == np.uint8 and pixels.shape == (resolution, resolution, 3)
        assert path.read_bytes() == content
    fault_tally.bad_input("image files")
