"""The attention explorer (docs/attention-explorer.md): its committed data is what
`benchmarks/attention_explorer.py` computes from the trained model, and in a real browser a click
on a pixel, or an arrow key on the focused image, shows that query's attention maps of G's and
D's layers, the model's own.

The browser part builds the site without running the lessons, opens the page from disk in
headless Chromium and drives it over the DevTools protocol (tests/_devtools.py): real clicks and
key presses, the shown weights read back from the page's key cells and compared with the
attention the model computes here for the same sample and query.
"""

import importlib.util
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _devtools import Browser
from test_docs_site import CHROMIUM_FLAGS, SCREENSHOT_DIR, chromium

from accelerated.checkpoint import load_generator
from accelerated.models import build_models, named_attention_layers
from accelerated.training.attention_report import recording

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "attention_explorer", ROOT / "benchmarks" / "attention_explorer.py"
)
explorer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(explorer)

# --virtual-time-budget is for --dump-dom and --screenshot runs; this test drives the browser
FLAGS = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
# Stored whole numbers of 1/10,000 (pixels: bytes): rounding on another CPU may move one by one.
ROUNDED = ("pixels", "attention")
FLOAT_TOLERANCE = 1e-4  # floats stored to 4 decimals


def assert_close(committed, computed, where="", tolerance=0):
    """Same structure and values; numbers within `tolerance`, which is 1 under ROUNDED keys."""
    if isinstance(computed, dict):
        assert committed.keys() == computed.keys(), f"{where}: keys differ"
        for key in computed:
            step = 1 if key in ROUNDED else tolerance
            assert_close(committed[key], computed[key], f"{where}.{key}", step)
    elif isinstance(computed, list):
        assert len(committed) == len(computed), f"{where}: lengths differ"
        for i, (a, b) in enumerate(zip(committed, computed, strict=True)):
            assert_close(a, b, f"{where}[{i}]", tolerance)
    elif isinstance(computed, float):
        assert abs(committed - computed) <= FLOAT_TOLERANCE, f"{where}: {committed} != {computed}"
    elif isinstance(computed, int) and tolerance:
        assert abs(committed - computed) <= tolerance, f"{where}: {committed} != {computed}"
    else:
        assert committed == computed, f"{where}: {committed!r} != {computed!r}"


def test_committed_data_is_what_the_script_computes():
    committed = json.loads(explorer.OUT.read_text())
    assert_close(committed, explorer.explore(explorer.MODEL))


def test_committed_data_has_three_samples_per_class_and_every_query():
    data = json.loads(explorer.OUT.read_text())
    labels = [s["label"] for s in data["samples"]]
    assert sorted(labels) == sorted(list(range(len(data["classes"]))) * 3)
    queries, keys = data["query_side"] ** 2, data["key_side"] ** 2
    for sample in data["samples"]:
        assert len(sample["pixels"]) == data["resolution"] ** 2 * 3
        assert sample["attention"].keys() == {"G8", "D8"}
        for rows in sample["attention"].values():
            assert len(rows) == queries and all(len(row) == keys for row in rows)
            # each row is a softmax: it sums to 1 up to the rounding of its 16 entries
            assert all(abs(sum(row) * data["weight_unit"] - 1) <= 1e-3 for row in rows)


def test_script_says_clearly_when_the_model_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["attention_explorer.py", "--model", str(tmp_path / "no.pt")])
    with pytest.raises(SystemExit, match=r"no trained model at .*no\.pt: give one with --model"):
        explorer.main()


def test_script_says_clearly_when_the_model_is_damaged_or_the_out_folder_missing(
        tmp_path, monkeypatch):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(sys, "argv", ["attention_explorer.py", "--model", str(damaged)])
    with pytest.raises(SystemExit, match=r"cannot read the model .*damaged\.pt"):
        explorer.main()
    monkeypatch.setattr(sys, "argv", ["attention_explorer.py", "--out",
                                      str(tmp_path / "no" / "such" / "x.json")])
    with pytest.raises(SystemExit, match=r"cannot write .*x\.json: .*writable --out"):
        explorer.main()


# ---- in the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The explorer's page in the site, built without running the lessons."""
    if chromium() is None:
        pytest.skip("needs Chromium (apt-get install chromium): none found on the PATH")
    out = tmp_path_factory.mktemp("explorer") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "SAGAN_DOCS_EXECUTE": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stderr[-6000:]}"
    ours = [line for line in result.stderr.splitlines()
            if "WARNING" in line and "attention-explorer" in line]  # fmt: skip
    assert not ours, "the build warns about the explorer:\n" + "\n".join(ours)
    return out / "attention-explorer" / "index.html"


@pytest.fixture(scope="module")
def model():
    """G and D of the trained model, in evaluation mode, with their attention layers by name."""
    G, cfg, _ = load_generator(explorer.MODEL, torch.device("cpu"))
    D = build_models(cfg)[1]
    D.load_state_dict(torch.load(explorer.MODEL, map_location="cpu", weights_only=True)["D"])
    D.eval()
    return G, D, cfg, named_attention_layers(G, D, cfg)


def model_maps(model, sample: int, query: tuple[int, int]) -> dict[str, list[float]]:
    """The model's attention of `query` (row, col) on the explorer's sample `sample`, computed
    here for that one sample: G drawing it, then D judging it, with its class."""
    G, D, cfg, layers = model
    y = torch.arange(cfg.num_classes).repeat_interleave(explorer.PER_CLASS)
    z = torch.randn(len(y), cfg.z_dim, generator=torch.Generator().manual_seed(explorer.SEED))
    z, y = z[sample : sample + 1], y[sample : sample + 1]
    with torch.no_grad(), recording(layers.values()):
        D(G(z, y), y)
        side = math.isqrt(layers["G8"].last_attention.shape[1])
        return {name: layer.last_attention[0, query[0] * side + query[1]].tolist()
                for name, layer in layers.items()}  # fmt: skip


READY = """new Promise((resolve, reject) => {
  let tries = 0;
  (function look() {
    const root = document.querySelector("[data-attention-explorer]");
    if (root && root.dataset.ready) resolve(true);
    else if (++tries > 600) reject(new Error("the explorer never drew itself"));
    else requestAnimationFrame(look);
  })();
})"""
SHOWN = """(() => {
  const root = document.querySelector("[data-attention-explorer]");
  const cells = Array.from(root.querySelectorAll(".ae-key")).map((cell) => ({
    layer: cell.dataset.layer, key: cell.dataset.key, weight: Number(cell.dataset.weight),
    colour: getComputedStyle(cell).backgroundColor, text: cell.textContent,
  }));
  return {sample: Number(root.dataset.sample), query: root.dataset.query, cells};
})()"""
IMAGE_BOX = """(() => {
  const image = document.querySelector(".ae-image");
  image.scrollIntoView({block: "center"});
  const box = image.getBoundingClientRect();
  return [box.left, box.top, box.width, box.height];
})()"""
RGB = re.compile(r"rgb\((\d+), (\d+), (\d+)\)")


def shown_maps(browser) -> tuple[int, tuple[int, int], dict[str, list[dict]]]:
    """(sample, query cell, {layer: its key cells in row-major order}) as the page shows them."""
    shown = browser.evaluate(SHOWN)
    maps = {}
    for cell in shown["cells"]:
        maps.setdefault(cell["layer"], []).append(cell)
    for cells in maps.values():
        cells.sort(key=lambda c: tuple(int(v) for v in c["key"].split(",")))
    query = tuple(int(v) for v in shown["query"].split(","))
    return shown["sample"], query, maps


def check_against_model(model, shown) -> dict[str, list[float]]:
    """The page's maps are the model's attention for the shown sample and query (weights, and
    colours and numbers that rise with them); returns the weights shown."""
    sample, query, maps = shown
    expected = model_maps(model, sample, query)
    assert maps.keys() == expected.keys() == {"G8", "D8"}
    weights = {}
    for layer, cells in maps.items():
        weights[layer] = [c["weight"] for c in cells]
        # stored in units of 1/10,000: half a unit of rounding, and another CPU's float noise
        assert weights[layer] == pytest.approx(expected[layer], abs=0.6e-4), (layer, query)
        for cell in cells:  # the number, a percentage to 0 or 1 decimal
            assert float(cell["text"].rstrip("%")) / 100 == pytest.approx(cell["weight"], abs=51e-4)
        brightness = [sum(map(int, RGB.fullmatch(c["colour"]).groups())) for c in cells]
        by_weight = sorted(zip(weights[layer], brightness, strict=True))
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(by_weight)), (layer, by_weight)
    return weights


@pytest.mark.slow
def test_clicks_and_arrow_keys_show_the_models_attention(page, model, tmp_path):
    with Browser(chromium(), FLAGS, tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        browser.evaluate(READY)
        R = json.loads(explorer.OUT.read_text())["resolution"]

        # Tab from the top of the page reaches the image, which then shows its focus.
        for _ in range(300):
            browser.press("Tab")
            if browser.evaluate("document.activeElement.classList.contains('ae-image')"):
                break
        else:
            pytest.fail("300 presses of Tab never reached the explorer's image")
        focus = browser.evaluate("""(() => { const s = getComputedStyle(document.activeElement);
            return [document.activeElement.matches(":focus-visible"), s.outlineStyle,
                    parseFloat(s.outlineWidth)]; })()""")
        assert focus[0] and focus[1] != "none" and focus[2] >= 2, f"no visible focus: {focus}"

        # The arrow keys move the query cell, and the maps follow.
        _, start, _ = shown_maps(browser)
        browser.press("ArrowRight")
        browser.press("ArrowDown")
        moved = shown_maps(browser)
        assert moved[1] == (start[0] + 1, start[1] + 1)
        check_against_model(model, moved)

        # Clicks on two pixels of another sample: each shows its own query cell's maps.
        thumb = browser.evaluate("""(() => { const b = document.querySelectorAll(".ae-thumb")[7];
            const r = b.getBoundingClientRect(); return [r.left + r.width / 2,
            r.top + r.height / 2]; })()""")
        browser.click(*thumb)
        seen = []
        for pixel in ((5, 3), (12, 13)):
            left, top, width, height = browser.evaluate(IMAGE_BOX)
            browser.click(left + (pixel[1] + 0.5) * width / R, top + (pixel[0] + 0.5) * height / R)
            shown = shown_maps(browser)
            assert shown[0] == 7
            assert shown[1] == (pixel[0] // 2, pixel[1] // 2), "a click picks its pixel's cell"
            seen.append(check_against_model(model, shown))
        for layer in ("G8", "D8"):
            assert seen[0][layer] != seen[1][layer], f"{layer}: two queries, one map"

        browser.evaluate("window.scrollTo(0, 0)")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        browser.screenshot(tmp_path / "attention-explorer.png")
        (SCREENSHOT_DIR / "attention-explorer.png").write_bytes(
            (tmp_path / "attention-explorer.png").read_bytes()
        )
