r"""Checkpoints: written atomically, loaded safely, checked before use.

A checkpoint is one `torch.save` file holding only tensors and plain Python values, so it loads
with `torch.load(weights_only=True)` (which refuses arbitrary pickled objects, the way a
malicious file would run code):

| key | what |
|---|---|
| `format_version` | `FORMAT_VERSION`; a newer file is refused with a message |
| `step` | iterations completed |
| `config` | the full run config as nested dicts |
| `G`, `D`, `G_ema` | `state_dict()`s (spectral-norm `_u` / `_v` and BN statistics included) |
| `opt_G`, `opt_D` | the two Adam optimisers' `state_dict()`s |
| `rng` | torch CPU/CUDA, Python and NumPy generator states, as tensors and ints |
| `counters` | skipped steps, rollbacks |
| `best` | the run's best evaluation so far (metric, value, step), or None |

Writing goes to a temporary file that is flushed, `fsync`ed and then `os.replace`d over the final
name, so a crash or a full disk mid-write leaves the previous checkpoints untouched; a failed
write is an `OSError` naming the file (`torch.save`'s zip writer reports a full disk as a
`RuntimeError`, which is translated). Pruning keeps the newest `keep` checkpoints that hold the
step their name says, up to the step just written: a damaged file, one whose name lies about its
step, and the checkpoints of later steps (a history the run left: by a rollback, or by a resume
that fell back past damaged files) are deleted. `best.pt` in the run folder is a checkpoint like
the others, of the step that evaluated best: outside `checkpoints/`, so pruning never deletes it
and resuming never starts from it.

Reading: a file that is no checkpoint at all (truncated, garbage: what a crash or a bad disk
leaves), or holds another step than its name says, raises `DamagedCheckpoint`, and `latest`
skips it for the next older one with a warning;
a file that references Python code, or is newer than this code, stops with `CheckpointError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerated.cli import UserError, gist, say
from accelerated.config import from_dict
from accelerated.files import save_atomic
from accelerated.models import Generator, ModelConfig

FORMAT_VERSION = 1
FOLDER = "checkpoints"
BEST = "best.pt"
_NAME = re.compile(r"step-(\d+)\.pt")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used: damaged, unsafe, too new or for another architecture."""


class DamagedCheckpoint(CheckpointError):
    """A file that does not read as a checkpoint at all (truncated, garbage, not a torch file):
    what a crash or a bad disk leaves, so `latest` skips it for an older one."""


def path_for(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / FOLDER / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary files are not listed)."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*.pt") if _NAME.fullmatch(p.name)]
    return sorted(found, key=_step_of)


def save(run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of `step`, then keep the newest `keep` good checkpoints up to it and
    delete the rest (see the module's doc). Raises OSError (then nothing is deleted)."""
    path = write(path_for(run_dir, step), step, state)
    kept = 0
    for old in reversed(list_checkpoints(run_dir)):
        named = _step_of(old)
        if named <= step and kept < keep and (old == path or _holds_its_step(old)):
            kept += 1
        else:
            old.unlink(missing_ok=True)
    return path


def newest_good(run_dir: Path) -> Path | None:
    """The newest checkpoint that holds the step its name says (its tensors not read)."""
    return next((p for p in reversed(list_checkpoints(run_dir)) if _holds_its_step(p)), None)


def _step_of(path: Path) -> int:
    return int(_NAME.fullmatch(path.name).group(1))


def _holds_its_step(path: Path) -> bool:
    """Whether `path` reads as a checkpoint of the step its name says (its tensors not read)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # damaged, unsafe, not a torch file: none of them is a good checkpoint
        return False
    return isinstance(state, dict) and state.get("step") == _step_of(path)


def write(path: Path, step: int, state: dict[str, Any]) -> Path:
    """Write the checkpoint of `step` to `path` (e.g. the run's `BEST`). Raises OSError."""
    save_atomic({"format_version": FORMAT_VERSION, "step": step, **state}, path)
    return path


def _unpickling_reason(err: BaseException) -> str:
    """The line of torch's weights-only error that names the problem (an opcode, a global)."""
    found = re.search(r"^.*(GLOBAL|Unsupported|Can only).*$", str(err), re.MULTILINE)
    return found.group(0).strip() if found else gist(err)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; raise CheckpointError with the reason if the
    file is not a checkpoint this code can read (DamagedCheckpoint if it is not one at all)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # garbage bytes, not a reference to Python code
            raise DamagedCheckpoint(f"checkpoint {path} is damaged or not a checkpoint: "
                                    f"{_unpickling_reason(err)}") from None
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects, not only tensors and plain values "
            f"(torch.load(weights_only=True) rejected it: {_unpickling_reason(err)}). Do not load "
            f"files you do not trust."
        ) from None
    except Exception as err:  # torch raises many kinds on damaged files; all mean "unreadable"
        raise DamagedCheckpoint(
            f"checkpoint {path} is damaged or not a checkpoint: {gist(err)}"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint (no format_version)")
    version = state["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than this code's "
            f"{FORMAT_VERSION}: update the code to load it"
        )
    return state


def latest(run_dir: Path, map_location: str | torch.device = "cpu", warn=say,
           at_most: int | None = None):
    """(path, state) of the newest checkpoint of a run (of step `at_most` or earlier, if given)
    that loads and holds the step its name says; others are skipped with a warning (an unsafe or
    too-new file stops with its error). Raises CheckpointError if none."""
    found = [p for p in list_checkpoints(run_dir) if at_most is None or _step_of(p) <= at_most]
    for path in reversed(found):
        try:
            state = load(path, map_location)
            if state.get("step") != _step_of(path):
                raise DamagedCheckpoint(f"checkpoint {path} holds step {state.get('step')!r}, "
                                        f"not the step {_step_of(path)} its name says")
            return path, state
        except DamagedCheckpoint as err:
            warn(f"warning: skipping {err}")
    before = "" if at_most is None else f" of step {at_most} or earlier"
    raise CheckpointError(f"no usable checkpoint{before} in {Path(run_dir) / FOLDER}")


@contextlib.contextmanager
def reading(path: Path):
    """Report a checkpoint that loads but lacks what restoring it needs (an entry, a tensor of
    the right size, a valid config) as CheckpointError naming the file, not as a traceback."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        reason = f"no entry {err.args[0]!r}" if isinstance(err, KeyError) else (
            gist(err))
        raise CheckpointError(
            f"checkpoint {path} does not hold a usable training state ({reason}): use a "
            f"checkpoint written by this code"
        ) from None


def check_model(state: dict[str, Any], model: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError naming every model setting where the checkpoint differs from `model`
    (the run's `config["model"]`), before any `load_state_dict` sees mismatched tensors. A setting
    the checkpoint does not list was added after it was written: the model it holds has that
    setting's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    saved = state.get("config", {}).get("model", {})
    saved = {**{k: defaults[k] for k in model if k in defaults}, **saved}  # saved ones win
    diffs = [f"model.{k}: checkpoint {saved.get(k)!r}, this run {model.get(k)!r}"
             for k in sorted(set(saved) | set(model)) if saved.get(k) != model.get(k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} is for another architecture; " + "; ".join(diffs)
            + ". Use the same [model] settings as the checkpoint."
        )


def check_compatible(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError unless the checkpoint fits a run of `config` (nested dicts): the same
    model settings (`check_model`), and an EMA generator exactly when `optim.ema` is on."""
    check_model(state, config["model"], path)
    if (state.get("G_ema") is None) == config["optim"]["ema"]:
        raise CheckpointError(
            f"checkpoint {path} was trained with optim.ema = {state.get('G_ema') is not None}: "
            f"use the same setting to resume it"
        )


# ---------------------------------------------------------------------------------------------
# Random generator states as tensors and plain values (safe for weights_only=True).


def rng_state() -> dict[str, Any]:
    """Every global random generator's state: torch CPU, CUDA (all devices), Python, NumPy."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the legacy global generator)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached": cached},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))  # noqa: NPY002


def load_generator(source: Path, device: torch.device, ema: bool = True):
    """(G in evaluation mode, model config, checkpoint path) from a checkpoint or run folder."""
    if source.is_dir():
        path, state = latest(source, device)
    else:
        path, state = source, load(source, device)
    with reading(path):
        cfg = from_dict(state["config"])
        G = Generator(cfg.model).to(device)
        weights = state["G_ema"] if ema and state.get("G_ema") is not None else state["G"]
        G.load_state_dict(weights)
    return G.eval(), cfg.model, path
