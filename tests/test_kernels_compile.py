"""Every CUDA source in accelerated/kernels compiles with nvcc, with the template instantiations
the models use, for sm_80 (A100) and sm_90 (H100). Needs nvcc, not a GPU.

At run time CuPy compiles the same text (`cupy_module.kernel_source`: the .cu with its local
header pasted in) with NVRTC (same front end, no host headers); this test is the check that runs
on machines without a GPU. A template is only compiled when something
instantiates it, so each source is wrapped in a file that takes the address of every kernel
instantiation, as NVRTC's name expressions do.
"""

import re
import shutil
import subprocess

import pytest
import torch

from accelerated.kernels import attention
from accelerated.kernels.cupy_module import (
    KERNEL_DIR,
    compile_options,
    kernel_source,
    nvrtc_options,
)
from accelerated.ops import attention_dims

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")

ARCHS = ("sm_80", "sm_90")
PLAIN_KERNELS = {
    "hinge.cu": (
        "hinge_discriminator_forward",
        "hinge_discriminator_backward",
        "hinge_generator_forward",
        "hinge_generator_backward",
    ),
    "power_iteration.cu": ("power_iteration_batched",),
}
# The attention blocks of the models: SAGAN's G and D put attention on 64- to 256-channel maps.
MODEL_CHANNELS = (64, 128, 256)


def model_head_sizes() -> list[tuple[int, int]]:
    """The compiled (D_QK, D_V) pairs that the paper and official blocks of the models need."""
    sizes = set()
    for C in MODEL_CHANNELS:
        for variant in ("paper", "official"):
            c_qk, c_v, _ = attention_dims(C, variant)
            sizes.add(attention.compiled_head_sizes(c_qk, c_v))
    return sorted(sizes)


def nvcc(source: str, instances: list[str], dtype, arch: str, out_dir, output: str = "--ptx"):
    """Compile `source` with `instances` instantiated; returns (returncode, log, output path)."""
    wrapper = out_dir / f"{source}.{arch}.{str(dtype)[6:]}.cu"
    lines = [kernel_source(source)]  # the text CuPy hands to NVRTC
    if instances:
        lines += ["void* sagan_instances[] = {", *[f"    (void*)&{n}," for n in instances], "};"]
    wrapper.write_text("\n".join(lines) + "\n")
    target = wrapper.with_suffix(".ptx" if output == "--ptx" else ".cubin")
    options = [*compile_options(dtype), f"-arch={arch}", output]
    command = [NVCC, *options, str(wrapper), "-o", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr, target


def entries(ptx: str) -> list[str]:
    return re.findall(r"\.entry\s+(\w+)\(", ptx)


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_attention_compiles_for_the_models_head_sizes(arch, dtype, tmp_path):
    instances = attention.instantiations(dtype, model_head_sizes())
    code, log, ptx = nvcc(attention.SOURCE, instances, dtype, arch, tmp_path)
    assert code == 0, log
    assert "warning" not in log.lower(), log
    found = entries(ptx.read_text())
    assert len(found) == len(instances)
    for kernel in attention.KERNELS:
        # mangled C++ names carry the kernel name with its length, e.g. _Z17attention_forwardI...
        count = sum(f"{len(kernel)}{kernel}I" in name for name in found)
        assert count == len(model_head_sizes()), (kernel, found)


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", sorted(PLAIN_KERNELS))
def test_plain_kernels_compile(source, arch, tmp_path):
    code, log, ptx = nvcc(source, [], torch.float32, arch, tmp_path)
    assert code == 0, log
    assert "warning" not in log.lower(), log
    assert sorted(entries(ptx.read_text())) == sorted(PLAIN_KERNELS[source])


def test_every_source_is_covered():
    sources = {path.name for path in KERNEL_DIR.glob("*.cu")}
    assert sources == {attention.SOURCE, *PLAIN_KERNELS}


def test_model_head_sizes_are_the_papers_and_official_ones():
    # paper: C/8 for both; official: C/8 and C/2 (then padded to the compiled sizes)
    assert model_head_sizes() == [(8, 8), (8, 32), (16, 16), (16, 64), (32, 32), (32, 128)]


@needs_nvcc
@pytest.mark.slow
def test_every_attention_instantiation_assembles_for_sm90(tmp_path):
    """All head-size pairs `fused_attention` may compile, through ptxas (--cubin); float32
    only (the bfloat16 ones differ in loads and stores, which the test above compiles)."""
    instances = attention.instantiations(torch.float32)
    code, log, _ = nvcc(attention.SOURCE, instances, torch.float32, "sm_90", tmp_path, "--cubin")
    assert code == 0, log


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_nvrtc_compiles_the_sources_as_cupy_does(dtype):
    """Where CuPy is installed (no GPU needed): NVRTC itself, with the options and name
    expressions `cupy_module` gives it, and CuPy's own -ftz=true."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as error:
        pytest.skip(f"CuPy's NVRTC is not available here: {error}")
    jobs = [(attention.SOURCE, attention.instantiations(dtype, model_head_sizes()))]
    if dtype == torch.float32:
        jobs += [(source, []) for source in sorted(PLAIN_KERNELS)]
    for source, names in jobs:
        for arch in ("compute_80", "compute_90"):
            program = nvrtc.createProgram(kernel_source(source), source, (), ())
            try:
                for name in names:
                    nvrtc.addNameExpression(program, name)
                options = (*nvrtc_options(dtype), "-ftz=true", f"--gpu-architecture={arch}")
                try:
                    nvrtc.compileProgram(program, options)
                except nvrtc.NVRTCError:
                    pytest.fail(f"{source} ({arch}): {nvrtc.getProgramLog(program)}")
                for name in names:
                    assert nvrtc.getLoweredName(program, name).startswith("_Z"), name
            finally:
                nvrtc.destroyProgram(program)
