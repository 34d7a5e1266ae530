/* AVX-512F instances of the GEMM micro-kernel template (16 f32 / 8 f64 lanes).
 * Compiled everywhere, run only where cpuid reports AVX-512 (never on the
 * AVX2-only development machine).  Every list entry with isa avx512 in
 * pi_gemm_ukernels.h becomes one kernel here. */
#include "pi_internal.h"
#include "pi_gemm_ukernels.h"
#if PI_X86
#include <immintrin.h>
#include "pi_vmath.h"

#define UK_TARGET PI_TARGET_AVX512
#define UK_MAXNV 8

#define UK_SUFFIX avx512_f32
#define UK_T float
#define UK_V __m512
#define UK_VL 16
#define UK_LOAD(p) _mm512_loadu_ps(p)
#define UK_STORE(p, v) _mm512_storeu_ps((p), (v))
#define UK_SET1(x) _mm512_set1_ps(x)
#define UK_ZERO() _mm512_setzero_ps()
#define UK_ADD(x, y) _mm512_add_ps((x), (y))
#define UK_MUL(x, y) _mm512_mul_ps((x), (y))
#define UK_FMA(x, y, z) _mm512_fmadd_ps((x), (y), (z))
#define UK_ACT(v, act) pi_act_ps_avx512((v), (act))
#define UK_ALPHA alpha_f
#include "pi_gemm_ukernel.inc"

#define UK_SUFFIX avx512_f64
#define UK_T double
#define UK_V __m512d
#define UK_VL 8
#define UK_LOAD(p) _mm512_loadu_pd(p)
#define UK_STORE(p, v) _mm512_storeu_pd((p), (v))
#define UK_SET1(x) _mm512_set1_pd(x)
#define UK_ZERO() _mm512_setzero_pd()
#define UK_ADD(x, y) _mm512_add_pd((x), (y))
#define UK_MUL(x, y) _mm512_mul_pd((x), (y))
#define UK_FMA(x, y, z) _mm512_fmadd_pd((x), (y), (z))
#define UK_ACT(v, act) pi_act_pd_avx512((v), (act))
#define UK_ALPHA alpha_d
#include "pi_gemm_ukernel.inc"

#define PI_GEMM_DEFINE_avx512_f32(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, avx512_f32, PI_TARGET_AVX512, float, 16, MR, NR)
#define PI_GEMM_DEFINE_avx512_f64(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, avx512_f64, PI_TARGET_AVX512, double, 8, MR, NR)
#define PI_GEMM_INSTANTIATE
#include "pi_gemm_ukernels.h"
PI_GEMM_INSTANTIATE_ALL()
#endif
