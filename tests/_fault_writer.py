"""Run `python -m accelerated.train` with a fault injected into the writing of one checkpoint.

    python tests/_fault_writer.py STEP FAULT TRAIN_ARGS...

When the checkpoint of step STEP is written, FAULT happens:

- `half`: half of the file's bytes are written, then the process SIGKILLs itself (a crash in
  the middle of `torch.save`);
- `unrenamed`: the temporary file is complete and fsynced, then the process SIGKILLs itself
  just before the rename that makes it the checkpoint;
- `disk-full`: `torch.save` raises ENOSPC after writing half the bytes, and training goes on.

The production code is not changed: `torch.save` and `os.replace` are replaced in this process
only, before `accelerated.train.main` runs.
"""

import errno
import io
import os
import signal
import sys

import torch

from accelerated import train


def main() -> int:
    step, fault, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    name = f"step-{step:08d}.pt"
    real_save, real_replace = torch.save, os.replace

    def save(obj, fh, *args, **kwargs):
        if not (isinstance(obj, dict) and obj.get("step") == step and fault != "unrenamed"):
            return real_save(obj, fh, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        fh.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        fh.flush()
        if fault == "disk-full":
            raise OSError(errno.ENOSPC, "No space left on device")
        os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *args, **kwargs):
        if fault == "unrenamed" and os.path.basename(dst) == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    torch.save, os.replace = save, replace
    return train.main(argv)


if __name__ == "__main__":
    sys.exit(main())
