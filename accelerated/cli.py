r"""What every command line of the project shares: one parser style, one user-error base class,
and one `run` that turns errors into one line and an exit status.

| exit status | when |
|---|---|
| 0 | done |
| 1 | the work failed: a disk or permission error, a run that diverged, a benchmark row's crash |
| 2 | a bad command line, setting or input file (`UserError`, `ValueError`); a missing package |
| 130 | interrupted by Ctrl-C |

A bad command line is reported by the parser itself (`Parser.error`, status 2); `--help` exits
with SystemExit(0), as argparse does.

A `UserError` (and so a `ConfigError`, `CheckpointError`...) carries its status in `exit_code`;
its message names the problem and what to do, and is printed as `PROG: error: MESSAGE`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from tqdm import tqdm

SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes seeds below this (and Python ints wrap)


class UserError(Exception):
    """A problem the user can fix (a setting, a file, a command line); `exit_code` is the
    command's exit status for it (a class's own, or given: `UserError(message, exit_code=1)`)."""

    exit_code = 2

    def __init__(self, *args, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line and exits 2, without the usage block.
    Options must be spelled out: `--c` is an unknown flag, not a guess at `--cache-dir`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {one_line(message)} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def run(prog: str, body: Callable[[], int | None], interrupted: str = "interrupted",
        exit_codes: dict[type, int] | None = None) -> int:
    """`body()`'s exit status, with the errors users meet reported as one line each;
    `exit_codes` overrides the status of some error classes for this command."""
    try:
        return body() or 0
    except SystemExit as exit_:  # the parser's one-line error (2) is a status; --help exits
        if not exit_.code:
            raise
        return exit_.code
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    except (UserError, ValueError, ImportError, OSError) as err:
        # UserError: its own status; ValueError: a value a lower floor refused, with its reason;
        # ImportError: an optional package to install; OSError: a folder that cannot be
        # written, a full disk
        code = getattr(err, "exit_code", 1 if isinstance(err, OSError) else 2)
        code = next((c for kind, c in (exit_codes or {}).items() if isinstance(err, kind)), code)
        print(f"{prog}: error: {err}", file=sys.stderr)
        return code


def say(message: str) -> None:
    """A message to the terminal (stderr) that does not tear a progress bar."""
    tqdm.write(message, file=sys.stderr)


def one_line(message: str) -> str:
    """`message` with its line breaks written as \\n, \\r: argparse echoes the arguments, and an
    argument may hold a newline."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def gist(err: BaseException) -> str:
    """The gist of a library's error: its first line, up to the first full stop."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line.split(". ")[0][:200]


def seed(text: str) -> int:
    """argparse type of a random seed: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: use 0 to {SEED_LIMIT - 1}")
    return value


def positive(text: str) -> int:
    """argparse type of a count: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number (a positive integer), got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (a positive integer), got {value}")
    return value


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--no-ema`: where a trained generator runs, and which of its weights."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not the EMA")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> CUDA when present else CPU; "cuda" without a GPU raises ValueError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("the device is 'cuda' but no CUDA GPU is available: use 'cpu'")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
