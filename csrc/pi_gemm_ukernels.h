/* The one list of GEMM micro-kernels (STYLE.md 5).
 *
 *   X(name, dtype, ctype, isa, MR, NR, KC, MC, NC)
 *
 * name   pi_<dtype>_gemm_<MR>x<NR>__<isa>: what it computes, its register
 *        tile and the ISA it needs (STYLE.md 4);
 * dtype  f32 | f64, ctype its C type;
 * isa    portable | avx2 | avx512: the token picks the template instance in
 *        pi_gemm_<isa>.c and the PI_ISA_* level (PI_GEMM_ISA_<isa>);
 * MR, NR the register tile (NR a multiple of the ISA's vector length);
 * KC, MC, NC the cache blocking used with this kernel (NC a multiple of NR): the packed A block
 *        (MC x KC) stays in L2, the B sliver (KC x NR) in L1, the packed B
 *        panel (KC x NC) in L3.
 *
 * The dispatch table (pi_gemm.c), the instantiations (pi_gemm_<isa>.c), the C
 * test (tests/test_gemm.c) and the Python tests (through pi_gemm_ukernel_info)
 * are all generated from this list: adding a variant is one line here.
 * Dispatch, for each (isa, dtype) of the best ISA available:
 *   - the first entry with MR > 1 runs every packed GEMM;
 *   - M == 1 runs the first entry with MR == 1 if there is one (a wide 1xNR
 *     tile: a row of B is NR/VL vectors read in one contiguous run, which is
 *     what streaming an unpacked B from memory needs);
 *   - 2 <= M <= 16 with B streamed runs the MR > 1 entry that reads each B
 *     sliver the fewest times per column (row passes / NR; first wins ties):
 *     8x768x3072 is 15-20% faster on 4x24 (2 passes of 24) than on 6x16
 *     (6 + 2 rows over 16 columns).
 * Other entries are reachable by the tests only.
 *
 * Zen 3 tuning (AVX2): 6x16 f32 keeps 12 accumulators + 2 B vectors + one
 * broadcast in the 16 ymm registers; KC=256 makes the B sliver 16 KiB (half
 * of L1d) and the A block 6x.. MC=144 rows x 256 = 144 KiB (under half of the
 * 512 KiB L2).  f64 halves NR so the same registers hold 6x8.  AVX-512 rows
 * (12x32 f32, 12x16 f64: 24 of 32 zmm) follow BLIS' SKX blocking and are NOT
 * tuned or run on this machine (no AVX-512 here).
 */
#ifndef PI_GEMM_UKERNELS_H
#define PI_GEMM_UKERNELS_H

#define PI_GEMM_UKERNELS(X) \
    X(pi_f32_gemm_6x16__avx2,     f32, float,  avx2,     6, 16, 256, 144, 4080) \
    X(pi_f64_gemm_6x8__avx2,      f64, double, avx2,     6,  8, 256,  72, 4080) \
    X(pi_f32_gemm_4x24__avx2,     f32, float,  avx2,     4, 24, 256,  96, 4080) \
    X(pi_f32_gemm_1x64__avx2,     f32, float,  avx2,     1, 64, 256,   1, 4096) \
    X(pi_f64_gemm_1x32__avx2,     f64, double, avx2,     1, 32, 256,   1, 4096) \
    X(pi_f32_gemm_12x32__avx512,  f32, float,  avx512,  12, 32, 384, 240, 3072) \
    X(pi_f64_gemm_12x16__avx512,  f64, double, avx512,  12, 16, 256, 120, 3072) \
    X(pi_f32_gemm_1x128__avx512,  f32, float,  avx512,   1, 128, 256,  1, 3072) \
    X(pi_f64_gemm_1x64__avx512,   f64, double, avx512,   1, 64, 256,   1, 3072) \
    X(pi_f32_gemm_4x8__portable,  f32, float,  portable, 4,  8, 256, 128, 2048) \
    X(pi_f64_gemm_4x4__portable,  f64, double, portable, 4,  4, 256,  64, 2048)

#define PI_GEMM_ISA_portable PI_ISA_PORTABLE
#define PI_GEMM_ISA_avx2 PI_ISA_AVX2
#define PI_GEMM_ISA_avx512 PI_ISA_AVX512

/* Largest MR / NR in the list (sizes the edge buffers on the stack). */
#define PI_GEMM_MAX_MR 16
#define PI_GEMM_MAX_NR 128

/* What the last k block of a tile does to the accumulators while they are
 * still in registers: acc = alpha*acc (+ C if not first) (+ bias + R, act if last). */
typedef struct {
    double alpha_d;     /* alpha for f64 kernels */
    float alpha_f;      /* alpha for f32 kernels */
    int first;          /* 0: add the partial sum already in C */
    int last;           /* 1: add bias and R, apply act */
    int act;            /* PI_ACT_* */
    const void *bias;   /* NR contiguous values or NULL */
    const void *r;      /* residual tile, columns contiguous, or NULL */
    pi_index r_rs;      /* its row stride in bytes */
} pi_gemm_epi;

/* Micro-kernel: C[0:mr, 0:NR] (row stride c_rs bytes, columns contiguous)
 * = epilogue(A_packed[0:mr, 0:kc] @ B[0:kc, 0:NR]).
 * A is packed MR-interleaved (a[p*MR + i]); B row p is NR contiguous values at
 * (char *)b + p*b_rs (packed: b_rs = NR*size; streamed: the matrix row stride).
 * 1 <= mr <= MR; all NR columns of B, C, bias and R are valid memory. */
#define PI_GEMM_UKERNEL_ARGS(T) \
    int mr, pi_index kc, const T *a, const T *b, pi_index b_rs, \
    T *c, pi_index c_rs, const pi_gemm_epi *ep

/* Declarations of every micro-kernel in the list. */
#define PI_GEMM_DECLARE_(name, dt, ct, isa, MR, NR, KC, MC, NC) \
    void name(PI_GEMM_UKERNEL_ARGS(ct));
PI_GEMM_UKERNELS(PI_GEMM_DECLARE_)

/* Internal hooks (tests): the table and a forced kernel. */
typedef struct {
    const char *name;
    int elem_size, isa, mr, nr, kc, mc, nc;
    void *fn;
} pi_gemm_ukernel;
extern const pi_gemm_ukernel pi_gemm_ukernel_table[];
extern const int pi_gemm_ukernel_count;
/* -1: dispatch on pi_current_isa; else the table index every GEMM uses
 * (the C test walks all kernels with it; not thread-safe). */
extern int pi_gemm_forced_ukernel;

#endif

/* Instantiation hook for pi_gemm_<isa>.c: each ISA file defines
 * PI_GEMM_DEFINE_<isa>_<dtype>(name, MR, NR) for its own ISA before including
 * this header with PI_GEMM_INSTANTIATE defined; entries of other ISAs expand
 * to nothing. */
#if defined(PI_GEMM_INSTANTIATE) && !defined(PI_GEMM_INSTANTIATE_ALL)
#ifndef PI_GEMM_DEFINE_portable_f32
#define PI_GEMM_DEFINE_portable_f32(name, MR, NR)
#endif
#ifndef PI_GEMM_DEFINE_portable_f64
#define PI_GEMM_DEFINE_portable_f64(name, MR, NR)
#endif
#ifndef PI_GEMM_DEFINE_avx2_f32
#define PI_GEMM_DEFINE_avx2_f32(name, MR, NR)
#endif
#ifndef PI_GEMM_DEFINE_avx2_f64
#define PI_GEMM_DEFINE_avx2_f64(name, MR, NR)
#endif
#ifndef PI_GEMM_DEFINE_avx512_f32
#define PI_GEMM_DEFINE_avx512_f32(name, MR, NR)
#endif
#ifndef PI_GEMM_DEFINE_avx512_f64
#define PI_GEMM_DEFINE_avx512_f64(name, MR, NR)
#endif
#define PI_GEMM_INSTANTIATE_(name, dt, ct, isa, MR, NR, KC, MC, NC) \
    PI_GEMM_DEFINE_##isa##_##dt(name, MR, NR)
#define PI_GEMM_INSTANTIATE_ALL() PI_GEMM_UKERNELS(PI_GEMM_INSTANTIATE_)
#endif
