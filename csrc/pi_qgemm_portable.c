/* Portable C u8 x s8 micro-kernels: the same packed layouts as the SIMD
 * kernels (k in groups of KU, elements of ES bytes), one scalar multiply-add a
 * product.  4x8 (KU 2, 16-bit) shares the AVX2 layout; 4x16k4 (KU 4, bytes)
 * shares the AVX-512 VNNI layout so the tests reach that packing here.
 * Sums wrap in unsigned 32-bit arithmetic, exactly as the s32 vector lanes do. */
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"
#include "pi_vmath.h"

static void epi_portable(int mr, int NR, const unsigned int *acc, void *c, long long c_rs,
                         const pi_qgemm_epi *ep)
{
    for (int i = 0; i < mr; i++) {
        char *crow = (char *)c + i * c_rs;
        const int za = ep->row_scale ? ep->row_zero[i] : ep->a_zero; /* per row: the header */
        for (int j = 0; j < NR; j++) {
            unsigned int v = acc[i * NR + j] + (unsigned int)za * (unsigned int)ep->b_corr[j]
                             - (ep->b_zero ? (unsigned int)ep->b_zero[j] * (unsigned int)ep->rowsum[i]
                                : 0u);
            if (ep->kind == PI_QOUT_S32) {
                ((int *)crow)[j] = (int)v;
                continue;
            }
            const float s = ep->row_scale ? ep->row_scale[i] * ep->scale[j] : ep->scale[j];
            float f = (float)(int)v * s;
            if (ep->bias)
                f = f + ep->bias[j];
            if (ep->act == PI_ACT_RELU)
                f = f < 0.0f ? 0.0f : f; /* NaN passes, as the vector kernels' max */
            else if (ep->act != PI_ACT_NONE)
                f = pi_act_f32(f, ep->act);
            if (ep->kind == PI_QOUT_F32)
                ((float *)crow)[j] = f;
            else
                ((unsigned char *)crow)[j] =
                    (unsigned char)pi_quantize_one(f, ep->out_scale, ep->out_zero, 0, 255);
        }
    }
}

#define DEFINE_PORTABLE(name, MR, NR, KU, AT, BT)                                     \
    void name(PI_QGEMM_UKERNEL_ARGS)                                                  \
    {                                                                                 \
        unsigned int acc[MR * NR] = {0};                                              \
        const AT *ap = (const AT *)a;                                                 \
        const BT *bp = (const BT *)b;                                                 \
        for (long long g = 0; g < kg; g++, ap += MR * KU, bp += NR * KU)              \
            for (int i = 0; i < mr; i++)                                              \
                for (int j = 0; j < NR; j++) {                                        \
                    int s = 0;                                                        \
                    for (int u = 0; u < KU; u++)                                      \
                        s += (int)ap[i * KU + u] * (int)bp[j * KU + u];               \
                    acc[i * NR + j] += (unsigned int)s;                               \
                }                                                                     \
        epi_portable(mr, NR, acc, c, c_rs, ep);                                       \
    }

DEFINE_PORTABLE(pi_u8s8_gemm_4x8__portable, 4, 8, 2, unsigned short, short)
DEFINE_PORTABLE(pi_u8s8_gemm_4x16k4__portable, 4, 16, 4, unsigned char, signed char)
