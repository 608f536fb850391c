"""Dense bfloat16 tensor-core peaks of the GPUs the project targets, picked by CUDA device name.

Figures from NVIDIA's datasheets, which quote bf16 "with sparsity"; the dense peak, the one model
FLOPs utilisation is measured against, is half of it:

- H100 Tensor Core GPU datasheet: BF16 1,979 TFLOPS (SXM), 1,671 (NVL), 1,513 (PCIe), with
  sparsity -> 989, 835, 756 dense;
- H200 Tensor Core GPU datasheet: BF16 1,979 TFLOPS (SXM), 1,671 (NVL), with sparsity -> 989, 835;
- A100 Tensor Core GPU datasheet: BF16 624 TFLOPS with sparsity -> 312 dense (SXM and PCIe).
"""

import re

# (pattern on torch.cuda.get_device_name(), dense bf16 TFLOP/s, which part), most specific first
PEAKS = (
    (r"H100.*NVL", 835.0, "H100 NVL"),
    (r"H100.*PCIe", 756.0, "H100 PCIe"),
    (r"H100", 989.0, "H100 SXM"),
    (r"H200.*NVL", 835.0, "H200 NVL"),
    (r"H200", 989.0, "H200 SXM"),
    (r"A100", 312.0, "A100"),
)


def bf16_peak(device_name: str) -> tuple[float, str] | None:
    """`(dense bf16 TFLOP/s, part)` for a CUDA device name, or None when it is not in the table."""
    for pattern, tflops, part in PEAKS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return tflops, part
    return None
