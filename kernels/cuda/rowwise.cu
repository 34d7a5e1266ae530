// Row-wise kernels of the CuPy backend: one block per row of a C-contiguous
// (rows, cols) array, warp-shuffle reductions, float4 loads when a row is
// 16-byte aligned.  T is float or double (instantiated by name expressions:
// softmax_rows<float>, ...).  Statistics accumulate in float (T=float) with
// a max-shifted sum, as the CPU kernels do.
#define PI_WARP 32

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = PI_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
    for (int o = PI_WARP / 2; o > 0; o >>= 1) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = (v != v || v >= w) ? v : w;   // NaN sticks
    }
    return v;
}

// Reduce over the block: each warp reduces, warp 0 reduces the partials.
template <typename T, bool IS_MAX>
__device__ T block_reduce(T v, T *shared) {
    int lane = threadIdx.x % PI_WARP, warp = threadIdx.x / PI_WARP;
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    int n_warps = (blockDim.x + PI_WARP - 1) / PI_WARP;
    v = threadIdx.x < n_warps ? shared[threadIdx.x] : (IS_MAX ? -INFINITY : (T)0);
    if (warp == 0) v = IS_MAX ? warp_max(v) : warp_sum(v);
    if (threadIdx.x == 0) shared[0] = v;
    __syncthreads();
    v = shared[0];
    __syncthreads();
    return v;
}

template <typename T>
__device__ __forceinline__ T pi_exp(T x);
template <> __device__ __forceinline__ float pi_exp<float>(float x) { return __expf(x); }
template <> __device__ __forceinline__ double pi_exp<double>(double x) { return exp(x); }

// log_softmax != 0 selects (x - max) - log(sum).
template <typename T>
__global__ void softmax_rows(const T *x, T *y, long long cols, int log_softmax) {
    __shared__ T shared[PI_WARP];
    const T *xr = x + (long long)blockIdx.x * cols;
    T *yr = y + (long long)blockIdx.x * cols;
    T m = -INFINITY;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        T v = xr[j];
        m = (m != m || m >= v) ? m : v;
    }
    m = block_reduce<T, true>(m, shared);
    T s = 0;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += pi_exp<T>(xr[j] - m);
    s = block_reduce<T, false>(s, shared);
    if (log_softmax) {
        T ls = log(s);
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - m - ls;
    } else {
        T inv = (T)1 / s;
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = pi_exp<T>(xr[j] - m) * inv;
    }
}

// rms != 0: y = x / sqrt(mean(x^2) + eps) * w; else layer norm with w, b (either may be NULL).
template <typename T>
__global__ void norm_rows(const T *x, const T *w, const T *b, T *y, long long cols, T eps,
                          int rms) {
    __shared__ T shared[PI_WARP];
    const T *xr = x + (long long)blockIdx.x * cols;
    T *yr = y + (long long)blockIdx.x * cols;
    T mean = 0;
    if (!rms) {
        T s = 0;
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
        mean = block_reduce<T, false>(s, shared) / (T)cols;
    }
    T ss = 0;   // two-pass variance: no cancellation
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        T d = xr[j] - mean;
        ss += d * d;
    }
    T inv = rsqrt(block_reduce<T, false>(ss, shared) / (T)cols + eps);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        T v = (xr[j] - mean) * inv;
        if (w) v *= w[j];
        if (b) v += b[j];
        yr[j] = v;
    }
}
