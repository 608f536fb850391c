"""One rank of `python -m accelerated.train` under torchrun, watched from inside.

    torchrun ... tests/_torchrun_worker.py OUT TRAIN_ARGS...

Runs `accelerated.train.main(TRAIN_ARGS)` as `-m accelerated.train` would, then writes
`OUT/rank{RANK}.pt`: this rank's G parameters and D state, every path it opened for writing,
the real-data indices of each draw, its torchrun environment, how training ended and the exit
status. The production code is not changed: methods are wrapped in this process only.
Optional, by environment variable:

- `SIGTERM_RANK1_AT_STEP=K`: rank 1 sends itself SIGTERM as step K begins;
- `PAUSE_RANK1_AFTER_CHECKPOINT=K`: once per OUT, rank 1 stops for good after the checkpoint of
  step K is on disk (every rank passed its barrier), having written its pid to `OUT/paused`
  (by a rename: the file appears whole). The test then kills it: a worker lost mid-run, at a
  point set by the step, not by a clock.

The test side reads the dumps with `load_ranks` and checks them with the `assert_*` helpers.
"""

import builtins
import os
import signal
import sys
import threading

import torch

from accelerated import train
from accelerated.training import batches, run

RANK = int(os.environ.get("RANK", "0"))
SEEN = {"written": [], "draws": {}, "trainer": None, "outcome": None}
real_open, real_indices = builtins.open, batches.StepBatches.indices
real_train, real_save = run.Run.train, run.Run.save


def spy_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        SEEN["written"].append(str(file))
    return real_open(file, mode, *args, **kwargs)


def spy_indices(self, draw):
    SEEN["draws"][draw] = real_indices(self, draw)
    return SEEN["draws"][draw]


def spy_train(self):
    SEEN["trainer"] = self
    stop_at = int(os.environ.get("SIGTERM_RANK1_AT_STEP", "-1"))

    def sigterm(module, inputs):
        if RANK == 1 and self.step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    self.gan.G.register_forward_pre_hook(sigterm)
    SEEN["outcome"] = real_train(self)
    return SEEN["outcome"]


def save_then_pause(self, out):
    path = real_save(self)
    paused = os.path.join(out, "paused")
    if (RANK == 1 and self.step == int(os.environ.get("PAUSE_RANK1_AFTER_CHECKPOINT", "-1"))
            and not os.path.exists(paused)):
        with real_open(paused + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(paused + ".tmp", paused)
        threading.Event().wait()  # until killed
    return path


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    builtins.open = spy_open
    batches.StepBatches.indices = spy_indices
    run.Run.train = spy_train
    run.Run.save = lambda self: save_then_pause(self, out)
    code = train.main(argv)
    builtins.open = real_open
    trainer = SEEN["trainer"]
    if trainer is not None:
        env = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                                          "TORCHELASTIC_RESTART_COUNT")}
        torch.save({"G": dict(trainer.gan.G.named_parameters()), "D": trainer.gan.D.state_dict(),
                    "written": SEEN["written"], "draws": SEEN["draws"], "batch": trainer.batch,
                    "env": env, "step": trainer.step, "outcome": SEEN["outcome"], "code": code},
                   os.path.join(out, f"rank{RANK}.pt"))
    return code


def load_ranks(out, world_size: int) -> list[dict]:
    """What each rank's worker wrote, by global rank."""
    return [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True)
            for r in range(world_size)]


def assert_same_weights(ranks: list[dict]) -> None:
    """Every G parameter and D tensor (weights, spectral-norm vectors) equal on every rank."""
    for net in ("G", "D"):
        for other in ranks[1:]:
            assert ranks[0][net].keys() == other[net].keys()
            for name, value in ranks[0][net].items():
                assert torch.equal(value, other[net][name]), f"{net}.{name} differs between ranks"


def assert_one_writer(ranks: list[dict], run_dir, root) -> None:
    """Global rank 0 wrote the run; no other rank opened a file for writing under `root`."""
    assert any(str(run_dir) in path for path in ranks[0]["written"])
    for r in ranks[1:]:
        assert [p for p in r["written"] if str(root) in p] == []


def assert_data_split(ranks: list[dict], draws: int) -> None:
    """Draws 0..draws-1 (all in the first epoch) dealt out without overlap: every rank drew its
    share of each global batch, and no image came twice, on one rank or across ranks."""
    seen = []
    for r in ranks:
        assert sorted(r["draws"]) == list(range(draws))
        assert all(len(indices) == r["batch"] for indices in r["draws"].values())
        seen += [i for indices in r["draws"].values() for i in indices]
    assert len(seen) == len(set(seen)) == draws * sum(r["batch"] for r in ranks)


if __name__ == "__main__":
    sys.exit(main())
