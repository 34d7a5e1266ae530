/* Direct convolution in the blocked NCHWc layout (c = 8 channels, one AVX2
 * vector), float32.
 *
 * x (N, Cb, H, W, 8) and y, r (N, Kb, OH, OW, 8) are C-contiguous; the weights
 * are packed once (pi_f32_conv2d_nchwc_pack) as (Kb, Cb, KH, KW, 8 in, 8 out)
 * and the bias padded to Kb*8.  For each output row, 6 output pixels x 16
 * output channels (two blocks) stay in 12 accumulators over every input block
 * and tap: a weight vector feeds 6 FMAs, a broadcast input value 2.  Border
 * pixels (a tap in the padding) run a per-pixel loop with the same vectors.  The layout
 * lets consecutive convolutions skip the NCHW round trip (the layout pass in
 * pyinfer/graph/passes/cnn.py); channels past C and K are zero, so they add
 * nothing and the next conv reads them as zero input.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "pi_internal.h"
#include "pi_vmath.h"

#define NB 8

PI_EXPORT int pi_f32_conv2d_nchwc_pack(const pi_conv2d_shape *s, const float *w, float *wp)
{
    /* w (K, C, KH, KW) contiguous (groups == 1) -> wp[kb][cb][ky][kx][ci][co]. */
    const pi_index cb_n = (s->c + NB - 1) / NB, kb_n = (s->k + NB - 1) / NB;
    if (s->groups != 1)
        return PI_ERR_ARG;
    for (pi_index kb = 0; kb < kb_n; kb++)
        for (pi_index cb = 0; cb < cb_n; cb++)
            for (pi_index ky = 0; ky < s->kh; ky++)
                for (pi_index kx = 0; kx < s->kw; kx++)
                    for (int ci = 0; ci < NB; ci++)
                        for (int co = 0; co < NB; co++) {
                            pi_index c = cb * NB + ci, k = kb * NB + co;
                            float v = 0;
                            if (c < s->c && k < s->k)
                                v = w[((k * s->c + c) * s->kh + ky) * s->kw + kx];
                            wp[(((((kb * cb_n + cb) * s->kh + ky) * s->kw + kx) * NB + ci) * NB) +
                               co] = v;
                        }
    return PI_OK;
}

PI_EXPORT pi_index pi_conv2d_nchwc_packed_size(const pi_conv2d_shape *s)
{
    return ((s->c + NB - 1) / NB) * ((s->k + NB - 1) / NB) * s->kh * s->kw * NB * NB;
}

#if PI_X86
/* One output row of NB2 (1 or 2) consecutive output blocks: 6 pixels x NB2
 * blocks of accumulators (12 of the 16 ymm for two blocks), so each broadcast
 * input value feeds NB2 FMAs and each weight vector 6. */
PI_TARGET_AVX2 static inline __attribute__((always_inline)) void
nchwc_row_avx2(const int NB2, const pi_conv2d_shape *s, pi_index cb_n, const float *x,
               const float *wk, pi_index wk_stride, const float *bias, const float *r,
               pi_index r_stride, int act, int clip, float lo, float hi, pi_index oy, float *y,
               pi_index y_stride)
{
    const pi_index plane = s->h * s->w * NB, wblk = s->kh * s->kw * NB * NB;
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    /* ox in [in0, in1): every tap's column inside the input. */
    pi_index in0 = s->pad_l > 0 ? (s->pad_l + s->sw - 1) / s->sw : 0;
    pi_index last = s->w - 1 - (s->kw - 1) * s->dw + s->pad_l; /* largest ox*sw allowed */
    pi_index in1 = last < 0 ? 0 : last / s->sw + 1;
    if (in1 > s->ow) in1 = s->ow;
    if (in0 > in1) in0 = in1;
    for (pi_index ox = 0; ox < s->ow;) {
        int n = 1;
        if (ox >= in0 && ox + 6 <= in1) n = 6;
        __m256 acc[2][6];
        for (int b = 0; b < NB2; b++)
            for (int t = 0; t < 6; t++) acc[b][t] = _mm256_loadu_ps(bias + b * NB);
        for (pi_index cb = 0; cb < cb_n; cb++) {
            const float *xc = x + cb * plane;
            const float *wc = wk + cb * wblk;
            for (pi_index ky = 0; ky < s->kh; ky++) {
                const pi_index iy = oy * s->sh - s->pad_t + ky * s->dh;
                if (iy < 0 || iy >= s->h) continue;
                for (pi_index kx = 0; kx < s->kw; kx++) {
                    const float *wt = wc + (ky * s->kw + kx) * NB * NB;
                    const pi_index ix0 = ox * s->sw - s->pad_l + kx * s->dw;
                    if (n == 6) {
                        const float *xp = xc + (iy * s->w + ix0) * NB;
                        const pi_index st = s->sw * NB;
                        for (int ci = 0; ci < NB; ci++) {
                            __m256 wv[2];
                            for (int b = 0; b < NB2; b++)
                                wv[b] = _mm256_loadu_ps(wt + b * wk_stride + ci * NB);
                            for (int t = 0; t < 6; t++) {
                                const __m256 xv = _mm256_broadcast_ss(xp + t * st + ci);
                                for (int b = 0; b < NB2; b++)
                                    acc[b][t] = _mm256_fmadd_ps(xv, wv[b], acc[b][t]);
                            }
                        }
                    } else if (ix0 >= 0 && ix0 < s->w) {
                        const float *xp = xc + (iy * s->w + ix0) * NB;
                        for (int ci = 0; ci < NB; ci++) {
                            const __m256 xv = _mm256_broadcast_ss(xp + ci);
                            for (int b = 0; b < NB2; b++)
                                acc[b][0] = _mm256_fmadd_ps(
                                    xv, _mm256_loadu_ps(wt + b * wk_stride + ci * NB), acc[b][0]);
                        }
                    }
                }
            }
        }
        for (int b = 0; b < NB2; b++)
            for (int t = 0; t < n; t++) {
                __m256 a = acc[b][t];
                if (r) a = _mm256_add_ps(a, _mm256_loadu_ps(r + b * r_stride + (ox + t) * NB));
                a = pi_act_ps_avx2(a, act);
                if (clip) a = _mm256_min_ps(_mm256_max_ps(a, vlo), vhi);
                _mm256_storeu_ps(y + b * y_stride + (ox + t) * NB, a);
            }
        ox += n;
    }
}
#endif

#if PI_X86
PI_TARGET_AVX2 static void nchwc_run_avx2(const pi_conv2d_shape *s, const float *x,
                                          const float *wp, const float *bias, const float *r,
                                          int act, int clip, float clip_lo, float clip_hi,
                                          float *y)
{
    const pi_index cb_n = (s->c + NB - 1) / NB, kb_n = (s->k + NB - 1) / NB;
    const pi_index pairs = (kb_n + 1) / 2, rows = s->n * pairs * s->oh, orow = s->ow * NB;
    const pi_index wk = cb_n * s->kh * s->kw * NB * NB, ystride = s->oh * orow;
    /* One thread's time: rows x (2 blocks of orow outputs) x wk / NB
     * multiply-adds, at micro-kernel speed (pi_threads_for). */
    int nt = pi_threads_for(4.0 * (double)rows * (double)orow * (double)wk / NB * PI_NS_PER_FLOP,
                            (double)rows);
    /* Rows of output-block pairs: two blocks share every broadcast input value. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 2)
    for (pi_index row = 0; row < rows; row++) {
        const pi_index oy = row % s->oh, kp = (row / s->oh) % pairs, n = row / (s->oh * pairs);
        const pi_index kb = 2 * kp;
        const pi_index yoff = ((n * kb_n + kb) * s->oh + oy) * orow;
        const float *xn = x + n * cb_n * s->h * s->w * NB;
        const float *rp = r ? r + yoff : NULL;
        if (kb + 1 < kb_n)
            nchwc_row_avx2(2, s, cb_n, xn, wp + kb * wk, wk, bias + kb * NB, rp, ystride, act,
                           clip, clip_lo, clip_hi, oy, y + yoff, ystride);
        else
            nchwc_row_avx2(1, s, cb_n, xn, wp + kb * wk, wk, bias + kb * NB, rp, ystride, act,
                           clip, clip_lo, clip_hi, oy, y + yoff, ystride);
    }
}
#endif

/* x, y, r: NCHWc with 8-channel blocks, C-contiguous; wp from the pack above;
 * bias: Kb*8 values (zero past K). */
PI_EXPORT int pi_f32_conv2d_nchwc(const pi_conv2d_shape *s, const float *x, const float *wp,
                                  const float *bias, const float *r, int act, int clip,
                                  float clip_lo, float clip_hi, float *y)
{
#if PI_X86
    if (pi_current_isa < PI_ISA_AVX2 || s->groups != 1 || act < PI_ACT_NONE || act > PI_ACT_TANH)
        return PI_ERR_UNSUPPORTED;
    nchwc_run_avx2(s, x, wp, bias, r, act, clip, clip_lo, clip_hi, y);
    return PI_OK;
#else
    return PI_ERR_UNSUPPORTED;
#endif
}
