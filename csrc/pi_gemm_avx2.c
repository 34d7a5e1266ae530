/* AVX2+FMA instances of the GEMM micro-kernel template (8 f32 / 4 f64 lanes).
 * Every list entry with isa avx2 in pi_gemm_ukernels.h becomes one kernel here. */
#include "pi_internal.h"
#include "pi_gemm_ukernels.h"
#if PI_X86
#include <immintrin.h>
#include "pi_vmath.h"

#define UK_TARGET PI_TARGET_AVX2
#define UK_MAXNV 8

#define UK_SUFFIX avx2_f32
#define UK_T float
#define UK_V __m256
#define UK_VL 8
#define UK_LOAD(p) _mm256_loadu_ps(p)
#define UK_STORE(p, v) _mm256_storeu_ps((p), (v))
#define UK_SET1(x) _mm256_set1_ps(x)
#define UK_ZERO() _mm256_setzero_ps()
#define UK_ADD(x, y) _mm256_add_ps((x), (y))
#define UK_MUL(x, y) _mm256_mul_ps((x), (y))
#define UK_FMA(x, y, z) _mm256_fmadd_ps((x), (y), (z))
#define UK_ACT(v, act) pi_act_ps_avx2((v), (act))
#define UK_ALPHA alpha_f
#include "pi_gemm_ukernel.inc"

#define UK_SUFFIX avx2_f64
#define UK_T double
#define UK_V __m256d
#define UK_VL 4
#define UK_LOAD(p) _mm256_loadu_pd(p)
#define UK_STORE(p, v) _mm256_storeu_pd((p), (v))
#define UK_SET1(x) _mm256_set1_pd(x)
#define UK_ZERO() _mm256_setzero_pd()
#define UK_ADD(x, y) _mm256_add_pd((x), (y))
#define UK_MUL(x, y) _mm256_mul_pd((x), (y))
#define UK_FMA(x, y, z) _mm256_fmadd_pd((x), (y), (z))
#define UK_ACT(v, act) pi_act_pd_avx2((v), (act))
#define UK_ALPHA alpha_d
#include "pi_gemm_ukernel.inc"

#define PI_GEMM_DEFINE_avx2_f32(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, avx2_f32, PI_TARGET_AVX2, float, 8, MR, NR)
#define PI_GEMM_DEFINE_avx2_f64(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, avx2_f64, PI_TARGET_AVX2, double, 4, MR, NR)
#define PI_GEMM_INSTANTIATE
#include "pi_gemm_ukernels.h"
PI_GEMM_INSTANTIATE_ALL()
#endif
