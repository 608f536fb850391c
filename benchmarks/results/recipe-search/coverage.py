"""Decoded coverage of a 16x16 run's generator: quality on 2,000 fresh samples and, among correct
samples, how often each colour / row / column / (class) appears."""

import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch

from accelerated.checkpoint import load_generator
from accelerated.data import builtin

torch.set_num_threads(1)
G, mcfg, path = load_generator(Path(sys.argv[1]), torch.device("cpu"))
n = 2000
z = torch.randn(n, mcfg.z_dim, generator=torch.Generator().manual_seed(1))
y = torch.arange(n) % 4
with torch.no_grad():
    x = G(z, y)
q = builtin.quality(x, y)
xs = x.numpy().transpose(0, 2, 3, 1)
a = builtin._decode_half(xs[:, :, :8])
b = builtin._decode_half(xs[:, :, 8:][:, :, ::-1])
wf = a["ok"] & b["ok"]
correct = (
    wf
    & (a["shape"] == y.numpy())
    & (b["shape"] == y.numpy())
    & np.logical_and.reduce([a[k] == b[k] for k in ("shape", "colour", "row", "col")])
)
out = {"path": str(path), **{k: round(float(v), 3) for k, v in q.items()}}
for key, m in (("colour", 6), ("row", 10), ("col", 2)):
    c = collections.Counter(a[key][correct].tolist())
    out[key] = [c.get(i, 0) for i in range(m)]
out["correct_per_class"] = [int((correct & (y.numpy() == k)).sum()) for k in range(4)]
print(json.dumps(out))
