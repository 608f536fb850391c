r"""`python -m accelerated.train`: train SAGAN.

```bash
python -m accelerated.train                              # the built-in data set, CPU-sized
python -m accelerated.train --preset imagenet128 --data.source /data/imagenet/train
python -m accelerated.train --config my.toml --optim.lr_d 2e-4 --run.name try2
python -m accelerated.train --resume runs/try2           # continue the newest checkpoint
torchrun --nproc_per_node 8 -m accelerated.train --preset imagenet128 ...   # data parallel
```

Every field of `accelerated.config.TrainConfig` is a flag `--section.field VALUE`
(`--help` lists them with defaults and docs). A run writes to `run.out_dir/run.name` (a timestamp
if no name is given) and never into an existing folder, except to continue it with `--resume`.

Under `torchrun --max-restarts N --rdzv-id JOB` a run needs no `--resume` after a restart: the
default name is JOB, the folder records JOB, and a start of JOB that finds the folder JOB made
continues it from its newest checkpoint (a folder of any other run is still refused).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from accelerated import checkpoint
from accelerated import config as C
from accelerated.cli import Parser, UserError, run, say
from accelerated.files import write_text_atomic
from accelerated.training import distributed
from accelerated.training.run import Run

PROG = "python -m accelerated.train"
LOCK = ".lock"  # in the run folder: held by the process training it
JOB = ".torchrun-job"  # in the run folder of a torchrun job that may restart: the job's id


def _default_text(info: C.FieldInfo, preset: dict) -> str:
    section, _, key = info.path.partition(".")
    shown = "none" if info.default is None else info.default
    text = f"default: {shown}"
    if preset.get(section, {}).get(key, info.default) != info.default:
        text += f"; {C.DEFAULT_PRESET} preset: {preset[section][key]}"
    return text


def _metavar(kind) -> str:
    text = C.type_name(kind)
    for name, shown in (("tuple", "LIST"), ("list", "LIST"), ("bool", "BOOL"), ("int", "INT"),
                        ("float", "FLOAT"), ("str", "TEXT")):
        if text.startswith(name):
            return shown
    return "VALUE"


def make_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        usage="%(prog)s [--preset NAME] [--config FILE] [--resume RUN_DIR] "
        "[--SECTION.FIELD VALUE ...]",
        description="Train SAGAN. Settings: defaults <- --preset <- --config <- --section.field "
        "flags. Lists take commas (--model.g_attention 8,16); 'none' means None.",
    )
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"named preset, one of {', '.join(C.preset_names())} "
                        f"(default: {C.DEFAULT_PRESET}; with --resume: the run's saved config)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML file of overrides, sections [model] [data] [optim] [run]")
    parser.add_argument("--resume", default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its newest complete checkpoint "
                        "(from step 0 if it has none), with its saved config plus any overrides "
                        "given here")
    preset = C.preset(C.DEFAULT_PRESET)
    groups = {}
    for info in C.fields_of():
        section = info.path.partition(".")[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(f"[{section}]")
        groups[section].add_argument(
            f"--{info.path}", dest=info.path, default=argparse.SUPPRESS,
            metavar=_metavar(info.type),
            help=f"{info.doc} ({_default_text(info, preset)})".replace("%", "%%"),
        )
    return parser


def build_config(args: argparse.Namespace) -> tuple[C.TrainConfig, Path | None]:
    """The run's config from the command line, and the run folder when resuming."""
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    if args.resume is None:
        return C.build(args.preset or C.DEFAULT_PRESET, args.config, overrides), None
    run_dir = Path(args.resume)
    if args.preset:
        raise UserError("--preset cannot be combined with --resume: a resumed run keeps its "
                         "saved config (override single fields instead)")
    return C.build(None, args.config, overrides, base=saved_config(run_dir)), run_dir


def saved_config(run_dir: Path) -> C.TrainConfig:
    """The config a run saved in its `config.json`; UserError if there is none or it is damaged."""
    saved = run_dir / "config.json"
    if not saved.is_file():
        raise UserError(f"--resume {run_dir}: no run there ({saved} is missing)")
    damaged = f"--resume {run_dir}: {saved} is damaged"
    hint = "restore it (the run's config.toml holds the same settings) or start a new run"
    try:
        values = json.loads(saved.read_text())
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise UserError(f"{damaged} ({err}); {hint}") from None
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise UserError(f"{damaged} (not sections of settings); {hint}")
    try:
        return C.from_dict(values)
    except C.ConfigError as err:
        raise UserError(f"{damaged} ({err}); {hint}") from None


def new_run_dir(cfg: C.TrainConfig, job: str | None = None) -> Path:
    """Create `out_dir/name` (a timestamp if no name) with the config in it (and the id of the
    torchrun `job` that may restart it); refuse a folder that exists. Atomic: the folder is built
    under a temporary name and renamed into place, so it never exists without its config (and
    can always be continued with --resume)."""
    cfg.run.name = cfg.run.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    exists = UserError(f"run folder {run_dir} already exists: choose another --run.name, or "
                        f"continue that run with --resume {run_dir}")
    if run_dir.exists() or run_dir.is_symlink():
        raise exists
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{cfg.run.name}.", suffix=".new",
                                     dir=run_dir.parent))
    try:
        C.write_config(cfg, building)
        if job is not None:
            write_text_atomic(building / JOB, job)
        os.rename(building, run_dir)  # fails if a folder of that name has appeared meanwhile
    except BaseException as err:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(err, OSError) and run_dir.exists():
            raise exists from None
        raise
    return run_dir


def job_run_dir(cfg: C.TrainConfig, job: str | None) -> tuple[Path, bool]:
    """(run folder, whether it continues a run) of a command without --resume: a new folder, or,
    in a torchrun job that may restart (`job`: its id), the folder this job made before a
    restart, continued as by --resume. In such a job the default name is the job's id, the same
    in every attempt."""
    if job is not None:
        cfg.run.name = cfg.run.name or job
        run_dir = Path(cfg.run.out_dir) / cfg.run.name
        if _job_of(run_dir) == job:
            return run_dir, True
    return new_run_dir(cfg, job), False


def _job_of(run_dir: Path) -> str | None:
    """The torchrun job recorded in a run folder (None: none, or not readable)."""
    try:
        return (run_dir / JOB).read_bytes().decode(errors="replace")
    except OSError:
        return None


def lock_run(run_dir: Path):
    """An exclusive lock on the run folder (its `.lock` file), held while the returned file is
    open: the lock ends with the process, however it ends. UserError if another holds it."""
    lock = open(run_dir / LOCK, "a")  # never truncated nor deleted: the lock is on the inode
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UserError(f"run folder {run_dir} is in use by another training process: wait for "
                         f"it to end (or stop it) before continuing the run") from None
    return lock


def prepare(argv: list[str] | None):
    """Parse, check and set up: (config, run folder, rank context, whether resuming)."""
    args = make_parser().parse_args(argv)
    cfg, resume_dir = build_config(args)
    C.validate(cfg, world_size=int(os.environ.get("WORLD_SIZE", "1")))
    job = distributed.restartable_job()
    ctx = distributed.setup(cfg.run.device)
    error, run_dir, resuming = None, resume_dir, resume_dir is not None
    if ctx.is_main and resume_dir is None:
        try:
            run_dir, resuming = job_run_dir(cfg, job)
        except (UserError, OSError) as err:
            error = str(err)
    error, run_dir, resuming = distributed.broadcast(ctx, (error, run_dir, resuming))
    if error:
        distributed.teardown(ctx)
        raise UserError(error)
    cfg.run.name = run_dir.name
    return cfg, run_dir, ctx, resuming


def report(trainer: Run, outcome: str) -> None:
    """What the run did and where its results are (rank 0)."""
    r, step, seen = trainer.cfg.run, trainer.step, trainer.observer
    elapsed = trainer.elapsed
    rate = f" in {elapsed / 60:.1f} min" if elapsed >= 60 else f" in {elapsed:.0f} s"
    if outcome == "stopped":
        print(f"stopped at step {step}{rate}; checkpoint saved. Continue with: "
              f"{PROG} --resume {trainer.run_dir}")
    else:
        print(f"done: {step} steps{rate} -> {trainer.run_dir}")
    if seen.last_quality is not None:
        which = "EMA generator" if trainer.ema else "generator"
        found = seen.last_quality
        values = ", ".join(f"{k} {v:.3f}" for k, v in found.items() if not k.startswith("twin"))
        when = "final quality" if seen.last_quality_step == step else (
            f"quality at step {seen.last_quality_step}")
        print(f"{when} ({r.eval_samples} samples, {which}): {values}")
        twins = [f"{k[5:]} {v:.2f} ({found['twin_chance/' + k[5:]]:.2f})"
                 for k, v in found.items() if k.startswith("twin/")]
        if twins:
            print(f"attention of queries on one twin to the other (chance): {', '.join(twins)}")
    if seen.last_grid is not None:
        print(f"samples: {seen.last_grid}")
        print(f"attention maps: {trainer.run_dir / 'attention'}")
    skipped = trainer.counters
    if skipped["skipped_d"] or skipped["skipped_g"] or skipped["rollbacks"]:
        print(f"non-finite steps skipped: D {skipped['skipped_d']}, G {skipped['skipped_g']}; "
              f"rollbacks {skipped['rollbacks']}")


def train_run(cfg: C.TrainConfig, run_dir: Path, ctx, resuming: bool) -> int:
    """Train the prepared run (locked, resumed where asked); exit status 0 or 130."""
    lock, started = None, resuming  # started: the run folder holds a run worth keeping
    try:
        if ctx.is_main:
            lock = lock_run(run_dir)
        # checked before Run() writes anything into the run folder
        path, state = resume_point(cfg, run_dir, ctx) if resuming else (None, None)
        trainer = set_up(cfg, run_dir, ctx)
        if state is not None:
            with checkpoint.reading(path):
                trainer.load(state, path)
            trainer.write_config()  # with this resume's overrides, for the next one
            if ctx.is_main:
                say(f"resuming {run_dir} at step {trainer.step} from {path}")
        else:
            trainer.start_new()
        started = True
        outcome = trainer.train()
        if ctx.is_main:
            report(trainer, outcome)
        return 0
    except KeyboardInterrupt:  # Ctrl-C before training began, or a second one during it
        if started:
            say(f"{PROG}: interrupted; continue from the newest complete checkpoint with: "
                f"{PROG} --resume {run_dir}")
        else:
            say(f"{PROG}: interrupted before the run's first checkpoint; nothing was kept")
        return 130
    finally:
        if ctx.is_main and lock is not None:
            if not started:  # a new run that failed to start: its folder goes
                shutil.rmtree(run_dir, ignore_errors=True)
            lock.close()


def resume_point(cfg: C.TrainConfig, run_dir: Path, ctx):
    """(path, state) of the checkpoint a resumed run continues from; (None, None) if it has none.
    Rank 0 picks the newest usable one and checks that it fits; the other ranks load that same
    file, so every rank continues from one step. A problem stops every rank: rank 0's with its
    message, and a rank that cannot read the file (its node does not share the run folder) with
    a CheckpointError saying so."""
    error, path, state = None, None, None
    if ctx.is_main:
        try:
            if checkpoint.list_checkpoints(run_dir):
                path, state = checkpoint.latest(run_dir, ctx.device, warn=say)
                with checkpoint.reading(path):
                    checkpoint.check_compatible(state, C.to_dict(cfg), path)
            else:
                say(f"{run_dir} has no checkpoint (it stopped before its first): starting at "
                    f"step 0")
        except (checkpoint.CheckpointError, OSError) as err:  # what the other ranks wait for
            error = err
    error, path = distributed.broadcast(ctx, (error, path))
    if error is not None:
        raise error
    problem = None
    if path is not None and not ctx.is_main:
        try:
            state = checkpoint.load(path, ctx.device)
        except checkpoint.CheckpointError as err:
            problem = f"rank {ctx.rank} cannot read the checkpoint rank 0 continues from ({err})"
    if distributed.any_rank(ctx, problem is not None):
        raise checkpoint.CheckpointError(
            f"{problem or f'another rank cannot read {path}, the checkpoint to continue from'}: "
            f"every rank must see the run folder; put run.out_dir on a file system that all "
            f"nodes share")
    return path, state


def set_up(cfg: C.TrainConfig, run_dir: Path, ctx) -> Run:
    """The run's `Run`; running out of memory while building it is a one-line error."""
    try:
        return Run(cfg, run_dir, ctx)
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"not enough memory to set up this run ({reason}): use smaller sizes "
                        f"(model.g_ch, model.d_ch, optim.batch_size, run.eval_samples)",
                        exit_code=1) from None


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        cfg, run_dir, ctx, resuming = prepare(argv)
        try:
            return train_run(cfg, run_dir, ctx, resuming)
        finally:
            distributed.teardown(ctx)

    # a checkpoint that cannot be resumed, like a diverged run, is a failed job here (1)
    return run(PROG, body, exit_codes={checkpoint.CheckpointError: 1})


if __name__ == "__main__":
    sys.exit(main())
