r"""Data-parallel training across processes started by `torchrun`.

`torchrun --nproc_per_node N -m accelerated.train ...` sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`
and the rendezvous address in the environment; `setup` reads them (`env://`) and joins the
process group: NCCL on CUDA (one GPU per process, `cuda:LOCAL_RANK`), gloo on CPU. Without
those variables it is a single process and every collective below is a no-op.

Rank 0 alone writes files; every rank trains on its own shard of each global batch; decisions
that must be unanimous (stop now, skip a step, roll back) go through `any_rank`.

Restarts: under `torchrun --max-restarts N` a failed worker makes torchrun stop and start the
whole group again, with the same command line. `restartable_job` names the job (torchrun's
`--rdzv-id`), which is how the restarted group finds the run folder it was training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from accelerated.cli import UserError, resolve_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> Context:
    """Join the process group if launched by torchrun (env://), and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size == 1:
        return Context(0, 1, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    return Context(dist.get_rank(), world_size, dev)


def restartable_job() -> str | None:
    """The id of the torchrun job (`--rdzv-id`) when torchrun may restart this process's group
    (`--max-restarts` above 0), else None; UserError if such a job could not restart safely.
    The id, not `TORCHELASTIC_RESTART_COUNT`, identifies a restart: a node whose own workers
    did not fail restarts them with its count unchanged, and a requeued job starts again at 0."""
    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) == 0:
        return None
    job = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if job == "none":  # torchrun's default without --rdzv-id (or --standalone)
        raise UserError("torchrun --max-restarts needs a job id to find this run again after a "
                        "restart: add --rdzv-id JOB_ID (under Slurm: --rdzv-id $SLURM_JOB_ID)")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # The restarted group finds the old group's keys in the store (their addresses) and
        # can wait on them for good: seen with two nodes, torch 2.13.
        raise UserError("torchrun --max-restarts with the launcher's store shared by every "
                        "attempt can hang when the group restarts (pytorch/pytorch#135712): use "
                        "--rdzv-backend c10d and export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                        "before torchrun")
    return job


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(ctx: Context, flag: bool) -> bool:
    """True on every rank if `flag` is True on any rank (an all-reduce of the flag with MAX)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_ranks(ctx: Context, ok: torch.Tensor) -> torch.Tensor:
    """`ok` (a 0-d bool tensor) and-ed over the ranks, on the device: no wait for the value."""
    if not ctx.distributed:
        return ok
    t = ok.to(torch.int32).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t[0].bool()


def broadcast(ctx: Context, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (any picklable value)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
