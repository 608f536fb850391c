"""Shared command-line helper for the small CLIs (sample, evaluate)."""

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line and exits 2, without the usage block."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)
