r"""Benchmark of evaluation: the time of an N-sample FID (generation and feature extraction).

It runs the evaluation's own loop (`accelerated.metrics.distances.generated_features` drawing
from `accelerated.models.sampling.generate`, as `accelerated.evaluate` does: G in float32 eval
mode, batch by batch, the feature network streaming the statistics), then the scores
(`distances.compare`: FID, KID, and IS for Inception), on a freshly initialised generator of the
preset (the time does not depend on the weights). Generation alone is timed as well, so the
features' share is the difference. The data set's reference features are computed once per data
set and cached, so they are not part of an evaluation's time and not timed here.

Feature network: the standard FID Inception with `--metrics inception` (plus torch-fidelity's
for the Inception Score with `--inception-weights PATH`), else the offline random-feature
network, much cheaper than Inception, so its time is a lower bound on an Inception FID's.
"""

from __future__ import annotations

import torch

from accelerated.bench.timing import times
from accelerated.bench.trainer import config
from accelerated.metrics import distances, feature_network
from accelerated.models import Generator, generate

PER_IMAGE = ("generation", "generation + features", "features (difference)")


def benchmark(preset: str, num_samples: int, batch: int, device: torch.device, metrics: str,
              inception_weights: str | None) -> tuple[list[dict], dict]:
    """`(rows, settings)`: seconds (and images per second) of each part of an N-sample FID."""
    if num_samples < 2:
        raise ValueError(f"--num-samples {num_samples}: FID needs at least 2 samples")
    model = config(preset).model
    torch.manual_seed(0)
    G = Generator(model).to(device)
    net = feature_network(metrics, inception_weights).to(device).eval()
    z = torch.randn(num_samples, model.z_dim).to(device)
    y = torch.randint(model.num_classes, (num_samples,)).to(device) if model.conditional else None

    def draw(z_batch, y_batch):
        return generate(G, z_batch, y_batch, batch)

    def generation():
        for start in range(0, num_samples, batch):
            draw(z[start : start + batch], None if y is None else y[start : start + batch])

    found = {}

    def generation_and_features(n: int):
        found["fake"], _ = distances.generated_features(draw, z[:n], None if y is None else y[:n],
                                                        net, batch)

    def compare():
        fake = found["fake"]
        mu, sigma = fake.stats.compute()
        distances.compare({"mu": mu, "sigma": sigma, "features": fake.features()}, fake)

    generation_and_features(min(2 * batch, num_samples))  # warm-up: kernels, allocator, caches
    seconds = {"generation": times(generation, device, 1)[0] / 1e3,
               "generation + features": times(lambda: generation_and_features(num_samples),
                                              device, 1)[0] / 1e3,
               "scores (FID, KID)": times(compare, device, 1)[0] / 1e3}
    seconds["features (difference)"] = seconds["generation + features"] - seconds["generation"]
    seconds["total"] = seconds["generation + features"] + seconds["scores (FID, KID)"]
    rows = [{"part": part, "seconds": s,
             "images_s": num_samples / s if part in PER_IMAGE and s > 0 else None}
            for part, s in seconds.items()]
    settings = {"preset": preset, "resolution": model.resolution, "num_samples": num_samples,
                "batch": batch, "feature_network": net.name}
    return rows, settings


def format_table(rows: list[dict], settings: dict) -> str:
    lines = [f"{settings['num_samples']} samples at {settings['resolution']}x"
             f"{settings['resolution']} (preset {settings['preset']}), batch {settings['batch']}, "
             f"features: {settings['feature_network']}"]
    for r in rows:
        rate = "" if r["images_s"] is None else f"{r['images_s']:>12,.0f} images/s"
        lines.append(f"  {r['part']:<24} {r['seconds']:>9.2f} s {rate}")
    return "\n".join(lines)
