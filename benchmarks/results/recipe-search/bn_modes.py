"""Same noise through G in eval mode (BN running statistics, what evaluation uses) and in train
mode (batch statistics over 64-sample batches, what D sees during training)."""

import sys
from pathlib import Path

import torch

from accelerated.checkpoint import load_generator
from accelerated.data import builtin

torch.set_num_threads(1)
G, mcfg, path = load_generator(Path(sys.argv[1]), torch.device("cpu"))
n = 2048
z = torch.randn(n, mcfg.z_dim, generator=torch.Generator().manual_seed(1))
y = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    G.eval()
    xe = G(z, y)
    G.train()
    xt = torch.cat([G(z[i : i + 64], y[i : i + 64]) for i in range(0, n, 64)])
for name, x in (("eval", xe), ("train-batch64", xt)):
    print(path.name, name, {k: round(float(v), 3) for k, v in builtin.quality(x, y).items()})
