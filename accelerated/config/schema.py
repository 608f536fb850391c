r"""What a training run can set: one documented dataclass per section, with the defaults.

A run's settings come from four layers, each overriding the one before
(`accelerated.config.build`):

1. the defaults below (the optimiser defaults are the paper's / official code's);
2. a named **preset**, a small TOML file in `accelerated/presets/` (`--preset`, default `builtin`);
3. a TOML file of your own (`--config file.toml`), with the same sections;
4. single fields on the command line (`--optim.lr_d 2e-4`, `--run.name try1`).

```toml
[model]
g_ch = 32

[optim]
batch_size = 64
```

Sections: `model` (the architecture, `accelerated.models.ModelConfig`), `data`, `optim` and `run`.
Each field's documentation is its `setting(default, doc)`: `python -m accelerated.train --help`
prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from accelerated.data import DEFAULT_CACHE
from accelerated.models.config import ModelConfig, setting
from reference.ttur import TTUR_LR_D, TTUR_LR_G

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "TrainConfig"]


def section(factory: type, doc: str) -> Any:
    """A config section (a dataclass of settings) with its documentation."""
    return field(default_factory=factory, metadata={"doc": doc})


@dataclass
class DataConfig:
    source: str = setting("builtin",
        'Data set for `accelerated.data.open_dataset`: "builtin" or a path.')
    cache_dir: str = setting(DEFAULT_CACHE, 'Where prepared data sets are cached.')
    workers: int = setting(0,
        'Data-loader worker processes per rank (0: load in the training process).')


@dataclass
class OptimConfig:
    batch_size: int = setting(256,
        'Global batch (all ranks together); must divide by the number of ranks.')
    lr_g: float = setting(TTUR_LR_G, 'Generator learning rate (TTUR: the slow time scale).')
    lr_d: float = setting(TTUR_LR_D, 'Discriminator learning rate (TTUR: the fast time scale).')
    beta1: float = setting(0.0, 'Adam beta1 (0 in paper and official code).')
    beta2: float = setting(0.999, 'Adam beta2 (official code 0.999; paper text 0.9).')
    eps: float = setting(1e-8, 'Adam epsilon.')
    d_steps: int = setting(1, 'Discriminator steps per generator step.')
    r1_gamma: float = setting(0.0,
        'Weight gamma of the R1 penalty gamma/2 E||grad_x D(x)||^2 on real images (Mescheder '
        'et al. 2018); 0: off, as in the paper. Its D pass computes attention by the readable '
        'route, whose backward can be differentiated again on every device.')
    r1_every: int = setting(1,
        'Lazy R1 (StyleGAN2): the penalty on the D steps of every r1_every-th iteration only, '
        'weighted by r1_every, for about the same effect at a fraction of its cost.')
    ema: bool = setting(False,
        'Keep an exponential moving average of G, used for samples and evaluation.')
    ema_decay: float = setting(0.9999, 'EMA decay per step.')
    ema_start: int = setting(2000, 'Step at which averaging starts (before it the EMA copies G).')


@dataclass
class RunConfig:
    name: str = setting("", 'Run folder name under out_dir ("" = a timestamp).')
    out_dir: str = setting("runs", 'Parent folder of the run folders.')
    steps: int = setting(1_000_000,
        'Training iterations (one iteration = d_steps D steps + one G step).')
    seed: int = setting(0, 'Seeds initialisation, data order and noise.')
    device: str = setting("auto", 'Device: "auto" (CUDA when present), "cpu" or "cuda".')
    bf16: bool = setting(True,
        'bfloat16 autocast on CUDA (SN, losses, BN statistics stay float32).')
    channels_last: bool = setting(True, 'Channels-last memory format on CUDA.')
    compile: bool = setting(False, 'Wrap G and D in torch.compile (CUDA).')
    compile_mode: Literal["default", "reduce-overhead"] = setting("default",
        'torch.compile\'s mode with run.compile: "reduce-overhead" captures CUDA graphs.')
    fused_adam: bool | None = setting(None,
        'Fused Adam (one kernel for all parameters): none = on CUDA only; true or false on any '
        'device.')
    attention_route: Literal["auto", "readable", "sdpa", "kernel"] = setting("auto",
        'How attention is computed: "auto" (SDPA on CUDA, the readable path elsewhere, the CuPy '
        'kernel where the backend picks it), or one route forced (`accelerated.ops.force_route`).')
    backend: Literal["auto", "torch", "cupy"] = setting("auto",
        'Kernel backend: "auto" (CuPy where it runs and is compiled for the shape) or one forced '
        '(`accelerated.backend.force_backend`).')
    log_every: int = setting(50, 'Steps between loss lines in metrics.jsonl / TensorBoard.')
    sample_every: int = setting(1000, 'Steps between sample grids and attention figures.')
    eval_every: int = setting(5000,
        "Steps between evaluations (FID, KID, the built-in data set's quality) and best.pt "
        'updates.')
    eval_samples: int = setting(1000, 'Samples generated for an evaluation.')
    eval_metrics: Literal["offline", "inception", "none"] = setting("offline",
        'Feature metrics of an evaluation: "offline" (FID and KID in fixed random features), '
        '"inception" (the paper\'s FID and KID in the standard Inception, and IS where '
        'torch-fidelity runs) or "none" (the built-in quality only).')
    inception_weights: str | None = setting(None,
        "Local copy of torch-fidelity's Inception weights, for the Inception Score with "
        'eval_metrics "inception" (none: torch-fidelity downloads them once, where it runs).')
    best_metric: Literal["fid", "kid", "score", "none"] = setting("fid",
        'Evaluation number that picks best.pt: "fid" or "kid" (lower is better), "score" (the '
        'built-in data set\'s quality, higher is better) or "none" (no best.pt).')
    checkpoint_every: int = setting(5000, 'Steps between checkpoints.')
    keep_checkpoints: int = setting(3, 'Newest checkpoints kept.')
    grid_columns: int = setting(8, 'Samples per class in the sample grid.')
    max_bad_steps: int = setting(10,
        'Non-finite steps in a row before rolling back to the newest checkpoint from before them.')
    max_rollbacks: int = setting(3, 'Rollbacks before giving up with an error.')
    progress: bool = setting(True, 'Show a tqdm progress bar.')


@dataclass
class TrainConfig:
    model: ModelConfig = section(ModelConfig, 'The architecture.')
    data: DataConfig = section(DataConfig, 'The data set.')
    optim: OptimConfig = section(OptimConfig, 'Losses, optimisers, EMA.')
    run: RunConfig = section(RunConfig, 'Output, schedule, device, fault tolerance.')
