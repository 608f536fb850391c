"""Run `python -m accelerated.train` with one fault injected at a given step and phase.

    python tests/_fault_writer.py STEP PHASE FAULT TRAIN_ARGS...

The fault happens in this process, at a point fixed by (STEP, PHASE), never by a clock. PHASE:

- `step`: in the middle of step STEP, after its D update, before its G update;
- `log`: when the train record of step STEP is written to metrics.jsonl;
- `write`: while the real `torch.save` writes the checkpoint of step STEP (after 64 KiB);
- `rename`: the checkpoint of step STEP complete and fsynced, just before its rename into place.

FAULT:

- `pause`: the process writes a byte to the pipe READY, then blocks until it reads one from GO
  (file descriptors given as `FAULT_PIPES=READY,GO`). Meanwhile the test strikes from outside, as
  the real world does (SIGKILL, SIGINT, a SIGTERM to the process group, data loader workers
  included), then lets it go on;
- `disk-full` (phases `write`, `log`): the kernel refuses writes from there on, as on a full
  disk: a file-size limit (`RLIMIT_FSIZE`, SIGXFSZ ignored, so `write()` fails with EFBIG). The
  real `torch.save` meets it after 64 KiB, and the limit is lifted afterwards (space freed); a
  log record is torn after 10 bytes, and the limit stays.

The production code is not changed: methods are wrapped in this process only, before
`accelerated.train.main` runs.
"""

import os
import resource
import signal
import sys

import torch

from accelerated import train
from accelerated.training import gan_step, run
from accelerated.training import metrics_log as run_logging

PART = 64 * 1024  # bytes of a checkpoint written before a `write` fault


def strike(fault: str) -> None:
    """Stop at the fault's point until the test, having struck, lets the process go on."""
    if fault != "pause":
        raise ValueError(f"fault {fault!r} does not fit this phase")
    ready, go = (int(fd) for fd in os.environ["FAULT_PIPES"].split(","))
    os.write(ready, b"!")
    os.read(go, 1)


def limit_file_size(size: int) -> int:
    """Make writes beyond `size` bytes of any file fail (EFBIG); returns the previous limit."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    return soft


class Tripwire:
    """A file object for `torch.save` that writes through to `fh` and strikes after PART bytes."""

    def __init__(self, fh, fault: str):
        self.fh, self.fault, self.written = fh, fault, 0

    def write(self, data) -> int:
        data = bytes(data)
        if self.written <= PART < self.written + len(data):
            head = PART - self.written
            self.fh.write(data[:head])
            self.fh.flush()
            os.fsync(self.fh.fileno())
            strike(self.fault)
            self.fh.write(data[head:])
        else:
            self.fh.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self.fh.flush()


def main() -> int:
    step, phase, fault, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]

    if phase == "step":
        iteration, g_step, at = run.Run.iteration, gan_step.GANStep.g_step, []

        def iteration_noting_the_step(self, batches):
            at[:] = [self.step + 1]
            return iteration(self, batches)

        def g_step_with_fault(self, z, y):  # after the D step of step `step`, before G's
            if at == [step]:
                strike(fault)
            return g_step(self, z, y)

        run.Run.iteration = iteration_noting_the_step
        gan_step.GANStep.g_step = g_step_with_fault
    elif phase == "log":
        write = run_logging.MetricsLog.write

        def write_with_fault(self, at, kind, values):
            if at == step and kind == "train":
                if fault != "disk-full":
                    write(self, at, kind, values)
                    strike(fault)
                    return
                limit_file_size(self.file.tell() + 10)
            write(self, at, kind, values)

        run_logging.MetricsLog.write = write_with_fault
    elif phase == "write":
        save = torch.save

        def save_with_fault(obj, fh, *args, **kwargs):
            if not (isinstance(obj, dict) and obj.get("step") == step):
                return save(obj, fh, *args, **kwargs)
            if fault != "disk-full":
                return save(obj, Tripwire(fh, fault), *args, **kwargs)
            previous = limit_file_size(PART)
            try:
                return save(obj, fh, *args, **kwargs)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE,
                                   (previous, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        torch.save = save_with_fault
    elif phase == "rename":
        replace, name = os.replace, f"step-{step:08d}.pt"

        def replace_with_fault(src, dst, *args, **kwargs):
            if os.path.basename(dst) == name:
                strike(fault)
            return replace(src, dst, *args, **kwargs)

        os.replace = replace_with_fault
    else:
        raise ValueError(f"unknown phase {phase!r}")
    return train.main(argv)


if __name__ == "__main__":
    sys.exit(main())
