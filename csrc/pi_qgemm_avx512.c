/* AVX-512 VNNI u8 x s8 micro-kernel: 8x32 s32 tile, vpdpbusd.
 *
 * vpdpbusd multiplies 4 u8 of A by 4 s8 of B per lane and adds the 4 products
 * to an s32 lane without intermediate saturation (the 's' form would
 * saturate), so it is exact for any operands: A is packed as bytes in groups
 * of 4 consecutive k, B as 32 columns x 4 k (2 zmm).  16 accumulators + 2 B
 * vectors + 1 broadcast of 32 zmm.  Compiled everywhere, selected only where
 * cpuid reports avx512vnni (never on the AVX2-only development machine: its
 * layout, packing and driver are tested through the portable k4 kernel, which
 * computes the same layout in plain C). */
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"
#if PI_X86
#include <immintrin.h>
#include "pi_vmath.h"

#define PI_TARGET_VNNI \
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx512vnni,avx2,fma")))

/* The epilogue (pi_qgemm_epi.inc), 16 lanes: the text the AVX2 kernels run. */
#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define QE_NAME qepi_avx512
#define QE_TARGET PI_TARGET_AVX512
#define QI_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define QI_STORE(p, v) _mm512_storeu_si512((void *)(p), (v))
#define QI_MULLO _mm512_mullo_epi32
#define QI_STORE_U8(p, v)                                                             \
    _mm_storeu_si128((__m128i *)(p),                                                  \
                     _mm512_cvtepi32_epi8(_mm512_min_epi32(                           \
                         _mm512_max_epi32((v), _mm512_setzero_si512()), _mm512_set1_epi32(255))))
#include "pi_qgemm_epi.inc"
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define ROW_STEP(i)                                                                   \
    if (R > i) {                                                                      \
        __m512i av = _mm512_set1_epi32(ap[i]);                                        \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, av, b0);                               \
        c##i##1 = _mm512_dpbusd_epi32(c##i##1, av, b1);                               \
    }
#define ROW_SPILL(i)                                                                  \
    if (R > i) {                                                                      \
        acc[2 * i] = c##i##0;                                                         \
        acc[2 * i + 1] = c##i##1;                                                     \
    }

#define DEFINE_ROWS(RN)                                                                \
    static PI_TARGET_VNNI void uk_vnni_r##RN(long long kg, const void *a, const void *b, \
                                             void *c, long long c_rs,                 \
                                             const pi_qgemm_epi *ep)                  \
    {                                                                                 \
        enum { R = RN };                                                              \
        const int *ap = (const int *)a;                                               \
        const char *bp = (const char *)b;                                             \
        __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00,        \
                c20 = c00, c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00,     \
                c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;     \
        for (long long g = 0; g < kg; g++, ap += 8, bp += 128) {                      \
            __m512i b0 = _mm512_loadu_si512(bp), b1 = _mm512_loadu_si512(bp + 64);    \
            ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3)                           \
            ROW_STEP(4) ROW_STEP(5) ROW_STEP(6) ROW_STEP(7)                           \
        }                                                                             \
        __m512i acc[16];                                                              \
        ROW_SPILL(0) ROW_SPILL(1) ROW_SPILL(2) ROW_SPILL(3)                           \
        ROW_SPILL(4) ROW_SPILL(5) ROW_SPILL(6) ROW_SPILL(7)                           \
        qepi_avx512(R, 2, R, acc, c, c_rs, ep);                                       \
    }
DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)
DEFINE_ROWS(7)
DEFINE_ROWS(8)

void pi_u8s8_gemm_8x32__avx512vnni(PI_QGEMM_UKERNEL_ARGS)
{
    switch (mr) {
    case 1: uk_vnni_r1(kg, a, b, c, c_rs, ep); break;
    case 2: uk_vnni_r2(kg, a, b, c, c_rs, ep); break;
    case 3: uk_vnni_r3(kg, a, b, c, c_rs, ep); break;
    case 4: uk_vnni_r4(kg, a, b, c, c_rs, ep); break;
    case 5: uk_vnni_r5(kg, a, b, c, c_rs, ep); break;
    case 6: uk_vnni_r6(kg, a, b, c, c_rs, ep); break;
    case 7: uk_vnni_r7(kg, a, b, c, c_rs, ep); break;
    default: uk_vnni_r8(kg, a, b, c, c_rs, ep); break;
    }
}
#else
void pi_u8s8_gemm_8x32__avx512vnni(PI_QGEMM_UKERNEL_ARGS) { (void)mr; }
#endif
