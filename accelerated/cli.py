"""Shared command-line helpers for the small CLIs (sample, evaluate, data.prepare)."""

import argparse
import sys

SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes seeds below this (and Python ints wrap)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line and exits 2, without the usage block.
    Options must be spelled out: `--c` is an unknown flag, not a guess at `--cache-dir`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {one_line(message)} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def one_line(message: str) -> str:
    """`message` with its line breaks written as \\n, \\r: argparse echoes the arguments, and an
    argument may hold a newline."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def seed(text: str) -> int:
    """argparse type of a random seed: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: use 0 to {SEED_LIMIT - 1}")
    return value
