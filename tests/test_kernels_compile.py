"""Every CUDA source in accelerated/kernels compiles with nvcc, with the template instantiations
the models use, for sm_80 (A100) and sm_90 (H100); and `bench registers` reads ptxas's
registers and spills of each attention kernel. Needs nvcc, not a GPU.

At run time CuPy compiles the same text (`cupy_module.kernel_source`: the .cu with its local
header pasted in) with NVRTC (same front end, no host headers); this test is the check that runs
on machines without a GPU. A template is only compiled when something
instantiates it, so each source is wrapped in a file that takes the address of every kernel
instantiation, as NVRTC's name expressions do.
"""

import json
import re
import shutil
import subprocess

import pytest
import torch

from accelerated.bench import registers
from accelerated.bench.__main__ import main
from accelerated.kernels import attention
from accelerated.kernels.cupy_module import (
    KERNEL_DIR,
    compile_options,
    instantiating_source,
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
    wrapper.write_text(instantiating_source(source, instances))  # the text NVRTC compiles
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


# -- registers and spills, as ptxas reports them (`python -m accelerated.bench registers`) -------

PTXAS_LOG = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z23attention_backward_dkdvIfLi32ELi128EEvPKT_S2_S2_S2_PKfS4_PS0_S5_ii' for 'sm_90'
ptxas info    : Function properties for _Z23attention_backward_dkdvIfLi32ELi128EEvPKT_S2_S2_S2_PKfS4_PS0_S5_ii
    448 bytes stack frame, 448 bytes spill stores, 448 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 448 bytes cumulative stack size, 20736 bytes smem
ptxas info    : Compile time = 193.015 ms
ptxas info    : Compiling entry function '_Z17attention_forwardI13__nv_bfloat16Li8ELi32EEvPKT_S3_S3_PS1_Pfii' for 'sm_90'
ptxas info    : Function properties for _Z17attention_forwardI13__nv_bfloat16Li8ELi32EEvPKT_S3_S3_PS1_Pfii
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 5120 bytes smem
"""  # noqa: E501  (ptxas's own lines, from nvcc 13.0 --resource-usage for sm_90)


def test_ptxas_figures_are_read_per_kernel():
    found = {registers.readable_name(m): f for m, f in registers.parse(PTXAS_LOG).items()}
    assert found == {
        "attention_backward_dkdv<float, 32, 128>": {
            "stack_frame_bytes": 448, "spill_stores_bytes": 448, "spill_loads_bytes": 448,
            "registers": 255, "shared_bytes": 20736},
        "attention_forward<__nv_bfloat16, 8, 32>": {
            "stack_frame_bytes": 0, "spill_stores_bytes": 0, "spill_loads_bytes": 0,
            "registers": 72, "shared_bytes": 5120},
    }


def test_occupancy_follows_registers_shared_memory_and_the_sm_limits():
    sm90 = registers.SM_LIMITS["sm_90"]
    # 254 registers -> 256 per thread, 8192 per warp, 2 warps per block: 4 blocks of 64K
    assert registers.occupancy(254, 20480, 64, sm90) == {
        "blocks_per_sm": 4, "warps_per_sm": 8, "bound_by": "registers"}
    assert registers.occupancy(16, 0, 64, sm90)["bound_by"] == "warps"  # 32 blocks of 2 warps
    assert registers.occupancy(32, 100_000, 64, sm90) == {
        "blocks_per_sm": 2, "warps_per_sm": 4, "bound_by": "shared memory"}


@needs_nvcc
def test_registers_bench_reports_every_attention_kernel(tmp_path, capsys):
    argv = ["registers", "--arch", "sm_90", "--dtypes", "float32", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("registers-ptxas-sm-90-*.json")
    record = json.loads(path.read_text())
    assert [r["kernel"] for r in record["rows"]] == attention.instantiations(torch.float32)
    for row in record["rows"]:
        assert 0 < row["registers"] <= 255 and row["warps_per_sm"] >= 2
    assert record["nvcc_commands"] == [
        "nvcc -std=c++17 -arch=sm_90 --cubin --resource-usage attention.sm_90.float.cu"]
    assert "attention_forward<float, 32, 128>" in capsys.readouterr().out
