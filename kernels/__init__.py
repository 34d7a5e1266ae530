"""pyinfer.kernels: Numba kernels (installed from kernels/ as ``pyinfer.kernels``).

Private layer of the numba backend (STYLE 9): jitted kernels that trust their
inputs.  pyinfer.backends.numba_backend validates layout and calls them.

* ``fastmath``    vectorizable float32 exp/log/tanh/sigmoid/erf/gelu/gelu_tanh/silu
* ``elementwise`` unary, binary (broadcast), where over a canonical rank-4 strided space
* ``reduce``      sum/mean/max/min/argmax over a canonical (O, K, N) space
* ``norm``        softmax, log_softmax, layer_norm, rms_norm
* ``gemm``        tiled prange GEMM / batched matmul with fused epilogue

Nothing is imported here: importing a kernel module compiles nothing, and a
kernel compiles (or loads from Numba's disk cache) on first call.
Modules import each other relatively, so ``kernels.x`` works from a checkout too.
"""
