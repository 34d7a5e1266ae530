/* AVX2 u8 x s8 micro-kernels (pi_qgemm_ukernels.h says when each applies).
 *
 * 6x16, exact for any weights: A and B arrive widened to 16 bits by packing
 * (pi_qgemm.c), k in pairs, so one 32-bit broadcast of A (a[i][2g],
 * a[i][2g+1]) times one B vector (8 columns x that pair) is one vpmaddwd
 * giving 8 exact s32 pair sums.  12 accumulators + 2 B vectors + 1 broadcast
 * = 15 of the 16 ymm registers.
 *
 * 4x24 w7, for weights packed as b - b_zero in [-64, 64]: bytes, k in
 * quads.  One 32-bit broadcast of A (4 k of row i) and a B vector (8 columns
 * x those 4 k) go through vpmaddubsw (16 s16 pair sums, <= 2*255*64 = 32640,
 * never saturating) and vpmaddwd by a vector of ones (8 s32 quad sums): 32
 * MACs per vpmaddubsw, twice the exact route's 16 per vpmaddwd, at the price
 * of the second multiply (both issue on Zen 3's two vector multiply pipes,
 * so the gain is in loads, packing and bytes: see bench/RESULTS.md).
 * 12 accumulators + ones + broadcast + product = 15 registers, so B is read
 * as a memory operand of vpmaddubsw (L1 serves 3 loads a cycle).
 *
 * The epilogue (zero-point correction, dequantize, bias, activation,
 * requantize: pi_qgemm_epi.inc) runs once a tile on the accumulators, spilled
 * to the stack, before anything reaches C. */
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"
#if PI_X86
#include <immintrin.h>
#include "pi_vmath.h"

/* The epilogue (pi_qgemm_epi.inc), 8 lanes. */
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define QE_NAME qepi_avx2
#define QE_TARGET PI_TARGET_AVX2
#define QI_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define QI_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), (v))
#define QI_MULLO _mm256_mullo_epi32
/* packs (s32 -> s16, saturating) then packus (s16 -> u8, saturating) is the
 * clamp to [0, 255]; each packs within 128-bit lanes, so the 8 bytes come out
 * as lanes 0-3 of the low half and 0-3 (the high lanes 4-7) of the high half. */
#define QI_STORE_U8(p, v)                                                             \
    do {                                                                              \
        __m128i w_ = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256((v), 1)); \
        _mm_storel_epi64((__m128i *)(p), _mm_packus_epi16(w_, w_));                    \
    } while (0)
#include "pi_qgemm_epi.inc"
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define ROW_STEP(i)                                                                   \
    if (R > i) {                                                                      \
        __m256i av = _mm256_set1_epi32(ap[i]);                                        \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(av, b0));               \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(av, b1));               \
    }
#define ROW_SPILL(i)                                                                  \
    if (R > i) {                                                                      \
        acc[2 * i] = c##i##0;                                                         \
        acc[2 * i + 1] = c##i##1;                                                     \
    }

/* The k loop of a full 6-row panel in assembly: GCC keeps the 12
 * accumulators, 2 B vectors, the broadcast and the product in 16 registers
 * only by spilling (it hoists all six broadcasts), which halved the speed.
 * ymm12-15 are scratch: B (12, 13), the A broadcast (14), the product (15). */
#define QSTEP(off, x0, x1)                                                            \
    "vpbroadcastd " #off "(%[a]), %%ymm14\n\t"                                        \
    "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"                                          \
    "vpaddd %%ymm15, %[" #x0 "], %[" #x0 "]\n\t"                                      \
    "vpmaddwd %%ymm13, %%ymm14, %%ymm15\n\t"                                          \
    "vpaddd %%ymm15, %[" #x1 "], %[" #x1 "]\n\t"
#define FULL_PANEL_LOOP(kg, ap, bp)                                                   \
    do {                                                                              \
        long long n_ = (kg);                                                          \
        const int *a_ = (ap);                                                         \
        const __m256i *b_ = (bp);                                                     \
        __asm__ volatile(                                                             \
            "1:\n\t"                                                                  \
            "vmovdqu (%[b]), %%ymm12\n\t"                                             \
            "vmovdqu 32(%[b]), %%ymm13\n\t"                                           \
            QSTEP(0, c00, c01) QSTEP(4, c10, c11) QSTEP(8, c20, c21)                  \
            QSTEP(12, c30, c31) QSTEP(16, c40, c41) QSTEP(20, c50, c51)               \
            "addq $24, %[a]\n\t"                                                      \
            "addq $64, %[b]\n\t"                                                      \
            "decq %[n]\n\t"                                                           \
            "jnz 1b\n\t"                                                              \
            : [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11),     \
              [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31),     \
              [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51),     \
              [a] "+r"(a_), [b] "+r"(b_), [n] "+r"(n_)                                \
            :                                                                         \
            : "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");                    \
    } while (0)

/* R live rows of the 6-row panel (R a constant in each instance). */
#define DEFINE_ROWS(RN)                                                                \
    static PI_TARGET_AVX2 void uk_avx2_r##RN(long long kg, const void *a, const void *b, \
                                             void *c, long long c_rs,                 \
                                             const pi_qgemm_epi *ep)                  \
    {                                                                                 \
        enum { R = RN };                                                              \
        const int *ap = (const int *)a;                                               \
        const __m256i *bp = (const __m256i *)b;                                       \
        __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00,        \
                c20 = c00, c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00,     \
                c50 = c00, c51 = c00;                                                 \
        if (R == 6 && kg > 0) {                                                       \
            FULL_PANEL_LOOP(kg, ap, bp);                                              \
        } else {                                                                      \
            for (long long g = 0; g < kg; g++, ap += 6, bp += 2) {                    \
                __m256i b0 = _mm256_loadu_si256(bp), b1 = _mm256_loadu_si256(bp + 1); \
                ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3) ROW_STEP(4) ROW_STEP(5) \
            }                                                                         \
        }                                                                             \
        __m256i acc[12];                                                              \
        ROW_SPILL(0) ROW_SPILL(1) ROW_SPILL(2) ROW_SPILL(3) ROW_SPILL(4) ROW_SPILL(5)  \
        qepi_avx2(R, 2, R, acc, c, c_rs, ep);                                         \
    }
DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)

void pi_u8s8_gemm_6x16__avx2(PI_QGEMM_UKERNEL_ARGS)
{
    switch (mr) {
    case 1: uk_avx2_r1(kg, a, b, c, c_rs, ep); break;
    case 2: uk_avx2_r2(kg, a, b, c, c_rs, ep); break;
    case 3: uk_avx2_r3(kg, a, b, c, c_rs, ep); break;
    case 4: uk_avx2_r4(kg, a, b, c, c_rs, ep); break;
    case 5: uk_avx2_r5(kg, a, b, c, c_rs, ep); break;
    default: uk_avx2_r6(kg, a, b, c, c_rs, ep); break;
    }
}

/* ---- 4x24, 7-bit weights -------------------------------------------------------- */

/* One row x 24 columns, k quad at offset `off` of A: vpmaddubsw (B from
 * memory) -> vpmaddwd by ones (ymm15) -> accumulate.  ymm13 holds the A
 * broadcast, ymm14 the product (renaming makes the reuse free). */
#define W7COL(boff, x)                                                                \
    "vpmaddubsw " #boff "(%[b]), %%ymm13, %%ymm14\n\t"                                \
    "vpmaddwd %%ymm15, %%ymm14, %%ymm14\n\t"                                          \
    "vpaddd %%ymm14, %[" #x "], %[" #x "]\n\t"
#define W7ROW(off, x0, x1, x2)                                                        \
    "vpbroadcastd " #off "(%[a]), %%ymm13\n\t"                                        \
    W7COL(0, x0) W7COL(32, x1) W7COL(64, x2)

/* Always the whole 4-row panel (packing zero-pads A past mr); only mr rows
 * are stored.  The k loop is assembly for the reason given above FULL_PANEL_LOOP. */
PI_TARGET_AVX2 void pi_u8s8_gemm_4x24k4w7__avx2(PI_QGEMM_UKERNEL_ARGS)
{
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
            c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    if (kg > 0) {
        long long n_ = kg;
        const char *a_ = (const char *)a, *b_ = (const char *)b;
        __asm__ volatile(
            "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n\t"
            "vpsrlw $15, %%ymm15, %%ymm15\n\t" /* 16-bit ones */
            "1:\n\t"
            W7ROW(0, c00, c01, c02) W7ROW(4, c10, c11, c12)
            W7ROW(8, c20, c21, c22) W7ROW(12, c30, c31, c32)
            "addq $16, %[a]\n\t"
            "addq $96, %[b]\n\t"
            "decq %[n]\n\t"
            "jnz 1b\n\t"
            : [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c10] "+x"(c10),
              [c11] "+x"(c11), [c12] "+x"(c12), [c20] "+x"(c20), [c21] "+x"(c21),
              [c22] "+x"(c22), [c30] "+x"(c30), [c31] "+x"(c31), [c32] "+x"(c32),
              [a] "+r"(a_), [b] "+r"(b_), [n] "+r"(n_)
            :
            : "xmm13", "xmm14", "xmm15", "memory", "cc");
    }
    const __m256i acc[12] = {c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32};
    qepi_avx2(4, 3, mr, acc, c, c_rs, ep);
}
#else
void pi_u8s8_gemm_6x16__avx2(PI_QGEMM_UKERNEL_ARGS) { (void)mr; }
void pi_u8s8_gemm_4x24k4w7__avx2(PI_QGEMM_UKERNEL_ARGS) { (void)mr; }
#endif
