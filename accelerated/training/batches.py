r"""Which real images and which noise a training step sees: a function of (seed, step, rank) alone.

Real batches: each epoch's order is `DistributedSampler`'s (a permutation seeded by
`seed + epoch`, dealt out so rank $r$ of $W$ gets every $W$-th index); draw $k$ of the run
takes positions $[kb, (k+1)b)$ of its epoch's share, $b$ the per-rank batch. Noise: a generator
seeded from (seed, step, rank, purpose). So a run resumed at step $t$ starts reading exactly
where an uninterrupted one would be, with no iterator state to save.

Data loader workers ignore SIGTERM and SIGINT: a cluster's stop (Slurm's scancel, preemption,
systemd) and Ctrl-C go to the whole process group, and the main process still needs its workers
to finish the step and save; the workers end with it. They are started with both signals
blocked, so none reaches them before they ignore it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def check_batch_fits(dataset: Dataset, batch: int, world_size: int) -> None:
    """ValueError unless each of `world_size` ranks gets at least one batch of `batch` an epoch."""
    if len(dataset) // world_size < batch:
        raise ValueError(
            f"the data set has {len(dataset)} images, fewer than one batch of {batch} per "
            f"rank ({world_size} ranks): use a smaller optim.batch_size or more data"
        )


class StepBatches:
    """Index lists of one rank's real batches from draw `start` on (an endless batch_sampler)."""

    def __init__(self, dataset: Dataset, batch: int, rank: int, world_size: int, seed: int,
                 start: int = 0):
        check_batch_fits(dataset, batch, world_size)
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.batch, self.start = batch, start
        self.per_epoch = len(self.sampler) // batch

    def indices(self, draw: int) -> list[int]:
        """Indices of draw number `draw` (0, 1, ...) for this rank."""
        epoch, k = divmod(draw, self.per_epoch)
        if getattr(self, "_epoch", None) != epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(self.sampler), epoch
        return self._order[k * self.batch : (k + 1) * self.batch]

    def __iter__(self) -> Iterator[list[int]]:
        draw = self.start
        while True:
            yield self.indices(draw)
            draw += 1


def real_batches(dataset: Dataset, batch: int, rank: int, world_size: int, seed: int, start: int,
                 workers: int, pin_memory: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless iterator of this rank's (images, labels), starting at draw `start`."""
    sampler = StepBatches(dataset, batch, rank, world_size, seed, start)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=workers > 0,
                        worker_init_fn=_ignore_stop_signals if workers else None)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return iter(loader)  # starts the workers, which inherit the blocked signals
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _ignore_stop_signals(worker_id: int) -> None:
    """In a data loader worker: ignore SIGTERM and SIGINT, then let signals through again."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def noise_generator(device: torch.device, *key: int) -> torch.Generator:
    """A generator on `device` seeded by the integers `key` (e.g. seed, step, rank, purpose)."""
    seed = hash(tuple(key)) & (2**63 - 1)  # int tuples hash the same in every process
    return torch.Generator(device).manual_seed(seed)
