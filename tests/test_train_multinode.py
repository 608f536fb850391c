"""Two nodes on one machine: torchrun across launchers, a lost worker, a folder not shared.

Each node is a torchrun launcher of its own (`--nnodes 2`, one gloo process each) that meets the
other at a c10d rendezvous on 127.0.0.1, as machines meet at their first node's address; each
launcher has an address of its own (`--local-addr` 127.0.0.1 and 127.0.0.2, as machines have
host names), and the rendezvous orders ranks by it, so global rank 0 is on the first node. The
commands are docs/gpu.md's (section Multi-node), which a test here checks.

Nothing waits on a clock: the launchers meet at the rendezvous; the worker to be lost stops at a
fixed step and says so through a file (`tests/_torchrun_worker.py`); the test then kills it.
Both launchers are stopped whatever happens (SIGTERM to each launcher's process group: torchrun
then stops its workers; SIGKILL if that is not enough).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _net import free_port
from _torchrun_worker import assert_data_split, assert_one_writer, assert_same_weights, load_ranks

from accelerated import checkpoint, train
from accelerated import config as C
from accelerated.models import build_models

WORKER = Path(__file__).with_name("_torchrun_worker.py")  # a rank, watched from inside
DOC = Path(__file__).parents[1] / "docs" / "gpu.md"
ADDRESSES = ("127.0.0.1", "127.0.0.2")  # the two nodes; the first holds global rank 0
STEPS, LOST_AFTER = 6, 2  # the lost worker stops after the checkpoint of step 2
TRAIN = ["--preset", "tiny", "--run.device", "cpu", "--run.steps", str(STEPS),
         "--optim.batch_size", "8", "--run.checkpoint_every", "2", "--run.keep_checkpoints", "10",
         "--run.sample_every", "1000", "--run.eval_every", "1000", "--run.eval_metrics", "none",
         "--run.best_metric", "score"]
# The launchers' environment: what docs/gpu.md exports (a store of its own for each attempt),
# and one thread a process.
EXPORTS = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
ENV = {**os.environ, **EXPORTS, "OMP_NUM_THREADS": "1"}
TIMEOUT = 300  # a failure guard only: every wait ends on an event long before it


def torchrun(endpoint: str, job: str, restarts: int, address: str | None = None,
             processes: int = 1) -> list[str]:
    """One node's launcher, as docs/gpu.md writes it (`address`: the node's, on one machine)."""
    return ["torchrun", "--nnodes", "2", "--nproc_per_node", str(processes),
            "--max-restarts", str(restarts), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", endpoint, "--rdzv-id", job,
            *(["--local-addr", address] if address else [])]


class Nodes:
    """Two launchers of the watched worker (outputs in OUT/node{0,1}.log), each in a process
    group of its own and in its own working folder (`cwds`: the nodes' disks; default OUT)."""

    def __init__(self, out: Path, *train_args, job: str, restarts: int = 0, env=None, cwds=None):
        self.out, endpoint = out, f"127.0.0.1:{free_port()}"
        self.logs = [out / f"node{n}.log" for n in (0, 1)]
        self.procs = []
        try:
            for n, address in enumerate(ADDRESSES):
                command = [sys.executable, "-m", "torch.distributed.run",
                           *torchrun(endpoint, job, restarts, address)[1:],
                           str(WORKER), str(out), *train_args]
                with open(self.logs[n], "w") as log:
                    self.procs.append(subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, process_group=0,
                        cwd=(cwds or (out, out))[n], env={**ENV, **(env or {})}))
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> "Nodes":
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # torchrun stops its workers, then itself
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def output(self) -> str:
        return "".join(log.read_text() for log in self.logs)

    def wait_for(self, path: Path) -> str:
        """The text of `path` once the worker has put it there (fails if a launcher ends)."""
        deadline = time.monotonic() + TIMEOUT
        while not path.exists():
            ended = [p.returncode for p in self.procs if p.poll() is not None]
            assert not ended and time.monotonic() < deadline, (
                f"launchers ended ({ended}) before {path.name} appeared:\n{self.output()}")
            time.sleep(0.05)  # not a synchronisation: how often to look
        return path.read_text()

    def finish(self) -> list[int]:
        return [proc.wait(timeout=TIMEOUT) for proc in self.procs]


def weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """Every tensor of the models and optimisers in the checkpoint of `step`, by path."""
    state = checkpoint.load(checkpoint.path_for(run_dir, step))
    found = {}

    def walk(value, prefix):
        if isinstance(value, torch.Tensor):
            found[prefix] = value
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}/{key}")

    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        walk(state[key], key)
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A run of STEPS steps on two nodes, never interrupted: (its folder, the ranks' dumps)."""
    out = tmp_path_factory.mktemp("two-nodes")
    with Nodes(out, *TRAIN, "--run.out_dir", str(out / "runs"), "--run.name", "straight",
               job="straight") as nodes:
        assert nodes.finish() == [0, 0], nodes.output()[-3000:]
    return out / "runs" / "straight", load_ranks(out, 2)


@pytest.mark.slow
def test_two_nodes_train_as_one_with_identical_weights_one_writer_and_split_data(
        uninterrupted):
    run_dir, ranks = uninterrupted
    assert [r["env"]["GROUP_RANK"] for r in ranks] == ["0", "1"]  # one rank on each node
    assert all(r["env"]["WORLD_SIZE"] == "2" and r["env"]["LOCAL_WORLD_SIZE"] == "1"
               for r in ranks)
    assert [(r["outcome"], r["step"], r["batch"]) for r in ranks] == [("done", STEPS, 4)] * 2
    assert_same_weights(ranks)
    assert_data_split(ranks, draws=STEPS)  # d_steps 1: one draw a step
    assert_one_writer(ranks, run_dir, run_dir.parents[1])
    assert checkpoint.path_for(run_dir, STEPS).is_file()
    torch.manual_seed(0)  # run.seed: the weights trained away from their initial values
    initial = dict(build_models(C.build("tiny").model)[0].named_parameters())
    assert any(not torch.equal(initial[k], v) for k, v in ranks[0]["G"].items())


@pytest.mark.slow
def test_a_lost_worker_restarts_the_group_which_continues_the_run_bitwise(tmp_path,
                                                                          uninterrupted):
    # No --run.name and no --resume: the run folder is named after the job, the same in every
    # attempt, and the restarted group finds it.
    run_dir = tmp_path / "runs" / "job-7"
    with Nodes(tmp_path, *TRAIN, "--run.out_dir", str(tmp_path / "runs"), job="job-7",
               restarts=1, env={"PAUSE_RANK1_AFTER_CHECKPOINT": str(LOST_AFTER)}) as nodes:
        pid = int(nodes.wait_for(tmp_path / "paused"))
        # Rank 1 waits after the checkpoint of step 2; rank 0 is inside step 3, waiting for
        # rank 1's gradients. What the run holds now must survive the restart unchanged.
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        os.kill(pid, signal.SIGKILL)
        assert nodes.finish() == [0, 0], nodes.output()[-3000:]
    output = nodes.output()
    assert f"resuming {run_dir} at step {LOST_AFTER} from " in output
    ranks = load_ranks(tmp_path, 2)
    assert ranks[1]["env"]["TORCHELASTIC_RESTART_COUNT"] == "1"  # its node restarted it
    assert [(r["outcome"], r["step"]) for r in ranks] == [("done", STEPS)] * 2
    assert_same_weights(ranks)
    # Bitwise the uninterrupted run: models, EMA and both optimisers.
    straight, restarted = weights(uninterrupted[0], STEPS), weights(run_dir, STEPS)
    assert straight.keys() == restarted.keys() and len(straight) > 50
    assert [k for k in straight if not torch.equal(straight[k], restarted[k])] == []
    # Nothing written before the loss was rewritten or lost; the log was only appended to.
    log = run_dir / "metrics.jsonl"
    assert checkpoint.path_for(run_dir, LOST_AFTER) in before
    for path, content in before.items():
        if path != log and "tensorboard" not in path.parts:
            assert path.read_bytes() == content, f"{path} changed"
    assert log.read_bytes().startswith(before[log])


@pytest.mark.slow
def test_a_node_that_does_not_see_the_run_folder_stops_every_rank_with_a_message(tmp_path):
    # The job's first attempt left checkpoints of steps 0 and 2 on the first node's disk; the
    # second node's copy of the folder lacks the newest (a disk of its own, or a stale listing).
    disks = [tmp_path / "node0", tmp_path / "node1"]
    env = {"TORCHELASTIC_MAX_RESTARTS": "1", "TORCHELASTIC_RUN_ID": "job-8"}
    first = [*TRAIN, "--run.steps", str(LOST_AFTER), "--run.out_dir", str(disks[0] / "runs")]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert train.main(first) == 0
    shutil.copytree(disks[0] / "runs", disks[1] / "runs")
    checkpoint.path_for(disks[1] / "runs" / "job-8", LOST_AFTER).unlink()
    run_dir = disks[0] / "runs" / "job-8"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with Nodes(tmp_path, *TRAIN, "--run.out_dir", "runs", job="job-8", restarts=1,
               cwds=disks) as nodes:
        codes = nodes.finish()
    output = nodes.output()
    assert codes[0] != 0 and codes[1] != 0
    missing = checkpoint.path_for(Path("runs") / "job-8", LOST_AFTER)
    assert (f"rank 1 cannot read the checkpoint rank 0 continues from (checkpoint {missing} "
            f"does not exist): every rank must see the run folder; put run.out_dir on a file "
            f"system that all nodes share") in output
    assert f"another rank cannot read {missing}, the checkpoint to continue from" in output
    assert "accelerated/" not in output  # torchrun reports the exits; no traceback of ours
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_the_docs_show_the_commands_these_tests_run():
    text = " ".join(DOC.read_text().replace("\\\n", " ").split())  # continued lines joined
    assert all(f"export {key}={value}" in text for key, value in EXPORTS.items())
    for address in ADDRESSES:  # the one-machine lines: what the tests run
        line = " ".join(torchrun("127.0.0.1:29400", "try1", 1, address))
        assert f"{line} -m accelerated.train --preset tiny --run.device cpu" in text
    machines = " ".join(torchrun("$HEAD:29400", "$JOB", 3, processes=8))
    assert text.count(f"{machines} -m accelerated.train") == 3  # 2 machines, and under Slurm


@pytest.mark.parametrize(("job", "shared_store", "message"), [
    ("none", "False", "torchrun --max-restarts needs a job id to find this run again after a "
                      "restart: add --rdzv-id JOB_ID"),
    ("job-1", "True", "torchrun --max-restarts with the launcher's store shared by every attempt "
                      "can hang when the group restarts (pytorch/pytorch#135712): use "
                      "--rdzv-backend c10d and export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"),
], ids=["no-job-id", "shared-store"])
def test_restarts_that_could_not_work_are_refused(tmp_path, monkeypatch, capsys, job,
                                                  shared_store, message):
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", job)  # "none": torchrun's id when none is given
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", shared_store)
    assert train.main(["--preset", "tiny", "--run.out_dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_job_continues_only_the_folder_it_made(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-9")
    argv = ["--preset", "tiny", "--run.out_dir", str(tmp_path)]
    cfg, run_dir, _, resuming = train.prepare(argv)
    assert (run_dir, resuming, cfg.run.name) == (tmp_path / "job-9", False, "job-9")
    assert (run_dir / train.JOB).read_text() == "job-9"
    # The same job's command again (a restart, a requeued job) continues it, without --resume
    # (the two-node test above trains through such a restart).
    assert train.prepare(argv)[1:4:2] == (run_dir, True)
    assert train.prepare([*argv, "--run.name", "job-9"])[1:4:2] == (run_dir, True)
    # A folder of that name that another run made is refused and left as it was.
    for other in ("another-job", None):
        folder = tmp_path / f"other-{other}"
        folder.mkdir()
        if other:
            (folder / train.JOB).write_text(other)
        assert train.main([*argv, "--run.name", folder.name]) == 2
        assert "already exists" in capsys.readouterr().err
        assert len(list(folder.iterdir())) == (1 if other else 0)
    # Without restarts (or outside torchrun) the folder is a new run's: refused.
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")
    assert train.main([*argv, "--run.name", "job-9"]) == 2
    assert "already exists" in capsys.readouterr().err
