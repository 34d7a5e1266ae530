"""Model compression: quantization, pruning, low-rank factorization.

Each function takes a ``pyinfer.Graph`` and returns a new one (the input is
left as it was); the kernels they rely on live with the other kernels.
"""
from .bsr import BSRMatrix, to_bsr  # noqa: F401  block-sparse weights (pruning's storage)
from .prune import prune, prune_weights  # noqa: F401  magnitude pruning -> SPARSE_GEMM layers
from .low_rank import LowRankReport, low_rank  # noqa: F401  truncated-SVD factorization + report
from .quantize import quantize_dynamic, quantize_static  # noqa: F401  int8 MatMul/Gemm -> QGEMM
