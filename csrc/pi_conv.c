/* 2-D convolution, NCHW: the implicit-GEMM path and the depthwise kernel.
 *
 * Implicit GEMM.  Per image n and group g the convolution is the GEMM
 *     Y[g] (Cout_g x P) = W[g] (Cout_g x K) @ X_col (K x P),  P = OH*OW,
 *     K = Cin_g*KH*KW (+1: a packed bias is a column of W against a row of ones),
 * and X_col is never stored: each thread im2col-packs the block of it the GEMM
 * micro-kernel needs straight into NR-wide slivers (the layout pi_gemm's B
 * packing makes), from the input at any strides.  W is packed once, at plan
 * time, into the micro-kernel's MR-row panels (pi_*_conv2d_pack_weights), so a
 * run never repacks weights.  The register tile and its epilogue are the GEMM
 * micro-kernels of pi_gemm_ukernels.h: residual add and activation happen on
 * the accumulators; the per-output-channel bias rides in the K loop as the
 * ones row, so it costs one FMA per output instead of a pass.  Clip (ReLU6)
 * has no micro-kernel code: it clamps the tile just stored, still in L1.
 *
 * Loops (BLIS order, M = output channels is small, N = pixels is large):
 *   unit (n, g, column chunk, row block) -- handed out dynamically, so on a
 *     shared machine a thread that loses its core does not hold half the work;
 *    pc: KC rows of K   -> pack the B block (KC x chunk, in L2)
 *     jr: NR columns     -> one B sliver (KC x NR, in L1)
 *      ir: MR rows       -> micro-kernel on the packed W panel (streams from L2)
 *
 * Depthwise (groups == C == Cout).  Per (n, c) plane, the padded input is copied
 * once into a per-thread buffer split into `stride_w` column phases, so that
 * every tap of every output row is a contiguous run: out[ox] += w * ph[ox + off].
 * The AVX2 f32 kernel keeps 4 vectors (32 outputs) in registers over all taps
 * and applies bias, residual, activation and clip before the one store.
 *
 * This file includes itself once per element type (as pi_vmath.h does) so the
 * f32 and f64 drivers are one text.
 */
#ifndef PI_CONV_T

#include <math.h>
#include <omp.h>
#include <string.h>

#include "pi_internal.h"
#include "pi_gemm_ukernels.h"
#include "pi_vmath.h"

static pi_index cv_cdiv(pi_index a, pi_index b) { return (a + b - 1) / b; }
static pi_index cv_round64(pi_index x) { return (x + 63) / 64 * 64; }

/* The micro-kernel the implicit GEMM uses for this element size now: of the best
 * ISA not above pi_current_isa, the first list entry with MR > 1 (as pi_gemm). */
static const pi_gemm_ukernel *cv_ukernel(int elem_size)
{
    const pi_gemm_ukernel *best = NULL;
    for (int i = 0; i < pi_gemm_ukernel_count; i++) {
        const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[i];
        if (u->elem_size != elem_size || u->isa > pi_current_isa || u->mr < 2)
            continue;
        if (best == NULL || u->isa > best->isa)
            best = u;
    }
    return best;
}

PI_EXPORT int pi_conv2d_gemm_mr(int elem_size)
{
    const pi_gemm_ukernel *u = cv_ukernel(elem_size);
    return u ? u->mr : 0;
}

static pi_index cv_k(const pi_conv2d_shape *s) { return s->c / s->groups * s->kh * s->kw; }

PI_EXPORT pi_index pi_conv2d_packed_weights_size(const pi_conv2d_shape *s, int mr, int with_bias)
{
    pi_index mg = s->k / s->groups;
    return s->groups * cv_cdiv(mg, mr) * mr * (cv_k(s) + (with_bias != 0));
}

/* How the pixels of one plane are cut into chunks and the output channels of a
 * group into row blocks, so that the units (n, g, chunk, block) keep the
 * threads evenly busy and a chunk's B block stays in L2. */
typedef struct {
    pi_index nc;       /* columns per chunk (a multiple of NR) */
    pi_index chunks;   /* chunks per plane */
    pi_index blocks;   /* row blocks per group */
    pi_index kcb;      /* rows of K per block */
} cv_split;

static cv_split cv_plan(const pi_conv2d_shape *s, const pi_gemm_ukernel *u, pi_index kp, int nt)
{
    cv_split sp;
    const pi_index p = s->oh * s->ow, nr = u->nr;
    const pi_index panels = cv_cdiv(s->k / s->groups, u->mr);
    /* 1 KiB of each K row a chunk (f32: 256 columns, f64: 128): a B block of
     * KC = 256 rows is 256 KiB, half of Zen 3's L2, next to the W block. */
    const pi_index target = cv_cdiv(1024 / u->elem_size, nr) * nr;
    sp.chunks = cv_cdiv(p, target);
    sp.blocks = 1;
    const pi_index base = s->n * s->groups * sp.chunks;
    /* Up to 16 units a thread, a remainder is a visible loss (13 units on 2
     * threads: 7 vs 6, 8%): round the units up to a multiple of the threads. */
    if (nt > 1 && base < 16 * nt && base % nt) {
        if (sp.chunks == 1 && panels >= nt) {
            sp.blocks = nt;            /* one small plane: split the channels */
        } else {
            pi_index want = cv_cdiv(cv_cdiv(base, nt) * nt, s->n * s->groups);
            if (want > cv_cdiv(p, nr)) want = cv_cdiv(p, nr);
            sp.chunks = want;
        }
    }
    sp.nc = cv_cdiv(cv_cdiv(p, sp.chunks), nr) * nr;
    sp.chunks = cv_cdiv(p, sp.nc);
    /* The bias row may make a block one row longer than KC: K = 256 (+1) is
     * one block, not two of 129 that store and reload every C tile. */
    const pi_index nkb = kp > 1 ? cv_cdiv(kp - 1, u->kc) : 1;
    sp.kcb = cv_cdiv(kp, nkb);
    return sp;
}

PI_EXPORT pi_index pi_conv2d_gemm_workspace_bytes(int elem_size, const pi_conv2d_shape *s,
                                                  int with_bias)
{
    const pi_gemm_ukernel *u = cv_ukernel(elem_size);
    if (!u)
        return 0;
    pi_index kp = cv_k(s) + (with_bias != 0);
    cv_split sp = cv_plan(s, u, kp, pi_num_threads);
    return (pi_index)pi_num_threads * cv_round64(sp.kcb * sp.nc * elem_size);
}

/* Depthwise: one padded, phase-split plane per thread. */
typedef struct {
    pi_index rows;   /* padded rows the taps reach */
    pi_index width;  /* values per phase row (a multiple of 8, plus the taps' reach) */
} cv_dw_geom;

static cv_dw_geom cv_dw(const pi_conv2d_shape *s)
{
    cv_dw_geom g;
    g.rows = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    g.width = (s->ow + 7) / 8 * 8 + ((s->kw - 1) * s->dw) / s->sw + 1;
    return g;
}

PI_EXPORT pi_index pi_conv2d_depthwise_workspace_bytes(int elem_size, const pi_conv2d_shape *s)
{
    cv_dw_geom g = cv_dw(s);
    return (pi_index)pi_num_threads * cv_round64(s->sw * g.rows * g.width * elem_size);
}

#if PI_X86
/* The AVX2 f32 depthwise rows of one plane (see the file comment).  ph: the
 * phase-split padded plane; w: kh*kw taps; y, r: the output / residual plane
 * (C-contiguous rows of ow). */
PI_TARGET_AVX2 static void cv_dw_plane_avx2_f32(const pi_conv2d_shape *s, cv_dw_geom g,
                                                const float *ph, const float *w, float bias,
                                                const float *r, int act, int clip, float lo,
                                                float hi, float *y)
{
    const pi_index ow = s->ow, pstride = g.rows * g.width;
    const __m256 vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (pi_index oy = 0; oy < s->oh; oy++) {
        float *yr = y + oy * ow;
        const float *rr = r ? r + oy * ow : NULL;
        for (pi_index x0 = 0; x0 < ow; x0 += 32) {
            const pi_index n = ow - x0 < 32 ? ow - x0 : 32;
            const int nv = (int)((n + 7) / 8);
            __m256 acc[4] = {vb, vb, vb, vb};
            for (pi_index ky = 0; ky < s->kh; ky++) {
                const float *row = ph + (oy * s->sh + ky * s->dh) * g.width + x0;
                /* Tap kx reads phase f, offset q: kx*dw = q*sw + f (no division
                 * in the loop: a 64-bit divide costs more than the tap's FMAs). */
                pi_index q = 0, f = 0;
                for (pi_index kx = 0; kx < s->kw; kx++) {
                    const float *src = row + f * pstride + q;
                    for (f += s->dw; f >= s->sw; f -= s->sw) q++;
                    const __m256 wv = _mm256_set1_ps(w[ky * s->kw + kx]);
                    if (nv == 4) {
                        acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src), acc[0]);
                        acc[1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 8), acc[1]);
                        acc[2] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 16), acc[2]);
                        acc[3] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 24), acc[3]);
                    } else {
                        for (int v = 0; v < nv; v++)
                            acc[v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + 8 * v), acc[v]);
                    }
                }
            }
            for (int v = 0; v < nv; v++) {
                const pi_index left = n - 8 * v;
                __m256 a = acc[v];
                /* Full vectors: plain loads/stores (vmaskmovps stores are
                 * microcoded on Zen: 40% of this kernel's time when used for all). */
                if (left >= 8) {
                    if (rr)
                        a = _mm256_add_ps(a, _mm256_loadu_ps(rr + x0 + 8 * v));
                } else if (rr) {
                    a = _mm256_add_ps(a, _mm256_maskload_ps(rr + x0 + 8 * v,
                                                            pi_tailmask_avx2((int)left)));
                }
                a = pi_act_ps_avx2(a, act);
                if (clip)
                    a = _mm256_min_ps(_mm256_max_ps(a, vlo), vhi);
                if (left >= 8) {
                    _mm256_storeu_ps(yr + x0 + 8 * v, a);
                } else {
                    float tail[8];
                    _mm256_storeu_ps(tail, a);
                    memcpy(yr + x0 + 8 * v, tail, (size_t)left * sizeof(float));
                }
            }
        }
    }
}
#endif

/* ---- the element-type templates ------------------------------------------ */
#define PI_CONV_T float
#define PI_CONV_SFX f32
#define PI_CONV_ACT pi_act_f32
#define PI_CONV_F32 1
#include "pi_conv.c"
#undef PI_CONV_T
#undef PI_CONV_SFX
#undef PI_CONV_ACT
#undef PI_CONV_F32

#define PI_CONV_T double
#define PI_CONV_SFX f64
#define PI_CONV_ACT pi_act_f64
#define PI_CONV_F32 0
#include "pi_conv.c"
#undef PI_CONV_T
#undef PI_CONV_SFX
#undef PI_CONV_ACT
#undef PI_CONV_F32

#else /* ---- template body: PI_CONV_T, PI_CONV_SFX, PI_CONV_ACT defined ---- */

#define CV_CAT_(a, b) a##b
#define CV_CAT(a, b) CV_CAT_(a, b)
#define CV(name) CV_CAT(name##_, PI_CONV_SFX)
#define CV_PUB(name) CV_CAT(CV_CAT(pi_, PI_CONV_SFX), name)
#define CV_AT(base, bytes) (*(const PI_CONV_T *)((const char *)(base) + (bytes)))

typedef PI_CONV_T CV(t);
typedef void (*CV(ukfn))(PI_GEMM_UKERNEL_ARGS(PI_CONV_T));

PI_EXPORT int CV_PUB(_conv2d_pack_weights)(const pi_conv2d_shape *s, int mr, const CV(t) *w,
                                           const CV(t) *bias, CV(t) *wp)
{
    /* wp[g][panel][k][mr]: the MR-interleaved panels of pi_gemm's pack_a, rows
     * past Cout_g zero, column K (if bias) the group's bias. */
    const pi_index mg = s->k / s->groups, k = cv_k(s), kp = k + (bias != NULL);
    const pi_index panels = cv_cdiv(mg, mr);
    if (mr < 1)
        return PI_ERR_ARG;
    for (pi_index g = 0; g < s->groups; g++)
        for (pi_index q = 0; q < panels; q++) {
            /* Row by row: W's rows are read in order, the panel (MR*kp values,
             * tens of KiB) takes the strided writes in cache. */
            CV(t) *d = wp + (g * panels + q) * mr * kp;
            for (int i = 0; i < mr; i++) {
                const pi_index row = q * mr + i;
                if (row >= mg) {
                    for (pi_index p = 0; p < kp; p++) d[p * mr + i] = 0;
                    continue;
                }
                const CV(t) *src = w + (g * mg + row) * k;
                for (pi_index p = 0; p < k; p++) d[p * mr + i] = src[p];
                if (kp > k) d[k * mr + i] = bias[g * mg + row];
            }
        }
    return PI_OK;
}

/* Where the next packed value goes: sliver `d` (NR columns by kc rows), column jr. */
typedef struct {
    CV(t) *d;
    int jr;
} CV(cursor);

/* Append `count` values to the packed row: src[t * step] (bytes), or zeros (src NULL)
 * or ones (src NULL, one != 0). */
static inline void CV(put_run)(CV(cursor) *cur, int NR, pi_index sliver, const char *src,
                               pi_index step, pi_index count, int one)
{
    const pi_index es = (pi_index)sizeof(CV(t));
    while (count > 0) {
        pi_index n = NR - cur->jr < count ? NR - cur->jr : count;
        CV(t) *d = cur->d + cur->jr;
        if (src == NULL) {
            CV(t) v = one ? (CV(t))1 : (CV(t))0;
            for (pi_index t = 0; t < n; t++) d[t] = v;
        } else if (step == es) {
            /* A loop, not memcpy: the pieces are at most NR values (a call
             * each cost 13% of a 1x1 conv). */
            const CV(t) *sv = (const CV(t) *)src;
            for (pi_index t = 0; t < n; t++) d[t] = sv[t];
            src += n * es;
        } else {
            for (pi_index t = 0; t < n; t++) d[t] = CV_AT(src, t * step);
            src += n * step;
        }
        count -= n;
        cur->jr += (int)n;
        if (cur->jr == NR) {
            cur->jr = 0;
            cur->d += sliver;
        }
    }
}

/* Rows [k0, k0 + kc) and columns [j0, j0 + nc) of the virtual im2col matrix of
 * one image and group (x: its first channel), packed as NR-column slivers
 * dst[s*NR*kc + p*NR + jj] with the columns past nc zero.  Row k < K is tap
 * (ci, ky, kx); row K is the ones row of a packed bias. */
static void CV(pack_b)(const pi_conv2d_shape *s, const char *x, pi_index x_cs, pi_index x_hs,
                       pi_index x_ws, pi_index k, pi_index k0, pi_index kc, pi_index j0,
                       pi_index nc, int NR, CV(t) *dst)
{
    const pi_index khw = s->kh * s->kw, ncp = cv_cdiv(nc, NR) * NR;
    const pi_index sliver = (pi_index)NR * kc;
    for (pi_index p = 0; p < kc; p++) {
        const pi_index kk = k0 + p;
        CV(cursor) cur = {dst + p * NR, 0};
        if (kk >= k) {
            CV(put_run)(&cur, NR, sliver, NULL, 0, nc, 1);
            CV(put_run)(&cur, NR, sliver, NULL, 0, ncp - nc, 0);
            continue;
        }
        const pi_index ci = kk / khw, rr = kk % khw, ky = rr / s->kw, kx = rr % s->kw;
        const char *xc = x + ci * x_cs;
        pi_index oy = j0 / s->ow, ox = j0 % s->ow, jj = 0;
        while (jj < nc) {
            const pi_index run = s->ow - ox < nc - jj ? s->ow - ox : nc - jj;
            const pi_index iy = oy * s->sh - s->pad_t + ky * s->dh;
            if (iy < 0 || iy >= s->h) {
                CV(put_run)(&cur, NR, sliver, NULL, 0, run, 0);
            } else {
                /* ix = ix0 + t*sw is inside [0, w) for t in [lo, hi). */
                const pi_index ix0 = ox * s->sw - s->pad_l + kx * s->dw;
                pi_index lo = ix0 >= 0 ? 0 : cv_cdiv(-ix0, s->sw);
                pi_index hi = ix0 < s->w ? cv_cdiv(s->w - ix0, s->sw) : 0;
                if (lo > run) lo = run;
                if (hi > run) hi = run;
                if (hi < lo) hi = lo;
                CV(put_run)(&cur, NR, sliver, NULL, 0, lo, 0);
                if (hi > lo)
                    CV(put_run)(&cur, NR, sliver, xc + iy * x_hs + (ix0 + lo * s->sw) * x_ws,
                                s->sw * x_ws, hi - lo, 0);
                CV(put_run)(&cur, NR, sliver, NULL, 0, run - hi, 0);
            }
            jj += run;
            ox = 0;
            oy++;
        }
        CV(put_run)(&cur, NR, sliver, NULL, 0, ncp - nc, 0);
    }
}

static inline CV(t) CV(clamp)(CV(t) v, CV(t) lo, CV(t) hi)
{
    /* NaN stays NaN (both comparisons are false). */
    return v < lo ? lo : (v > hi ? hi : v);
}

PI_EXPORT int CV_PUB(_conv2d_gemm)(const pi_conv2d_shape *s, int mr, const CV(t) *x,
                                   pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index x_ws,
                                   const CV(t) *wp, int packed_bias, const CV(t) *r, int act,
                                   int clip, CV(t) clip_lo, CV(t) clip_hi, CV(t) *y, void *ws,
                                   pi_index ws_bytes)
{
    const pi_index es = (pi_index)sizeof(CV(t));
    const pi_gemm_ukernel *u = cv_ukernel((int)es);
    if (!u)
        return PI_ERR_UNSUPPORTED;
    if (u->mr != mr || act < PI_ACT_NONE || act > PI_ACT_TANH)
        return PI_ERR_ARG; /* weights packed for another ISA's tile */
    const pi_index k = cv_k(s), kp = k + (packed_bias != 0);
    const pi_index mg = s->k / s->groups, cg = s->c / s->groups, p = s->oh * s->ow;
    const pi_index panels = cv_cdiv(mg, mr);
    const int NR = u->nr, MR = u->mr;
    /* One thread's time: the flops at micro-kernel speed plus gathering each
     * packed input value (kp per output column of a group) once; at most a
     * thread per NR columns of a group. */
    const double flops = 2.0 * (double)s->n * (double)s->k * (double)p * (double)k;
    const double gather = (double)s->n * s->groups * (double)p * (double)kp * (double)es;
    const int nt = pi_threads_for(flops * PI_NS_PER_FLOP * (double)(es / 4) +
                                      gather * PI_NS_PER_BYTE,
                                  (double)s->n * s->groups * cv_cdiv(p, NR) * panels);
    /* Split for the threads that run (a plan for more cuts a small call into
     * pieces one thread runs slower), unless the workspace, sized for the
     * plan of pi_num_threads, is too small for that split. */
    cv_split sp = cv_plan(s, u, kp, nt);
    pi_index slot = cv_round64(sp.kcb * sp.nc * es);
    if (ws_bytes < slot * nt) {
        sp = cv_plan(s, u, kp, pi_num_threads);
        slot = cv_round64(sp.kcb * sp.nc * es);
    }
    if (ws_bytes < slot * nt || ws == NULL)
        return PI_ERR_WORKSPACE;
    const pi_index units = s->n * s->groups * sp.chunks * sp.blocks;
    const CV(ukfn) fn = (CV(ukfn))u->fn;

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        CV(t) *bp = (CV(t) *)((char *)ws + (pi_index)omp_get_thread_num() * slot);
        CV(t) ct[PI_GEMM_MAX_MR * PI_GEMM_MAX_NR];
        CV(t) rt[PI_GEMM_MAX_MR * PI_GEMM_MAX_NR];
#pragma omp for schedule(dynamic, 1)
        for (pi_index unit = 0; unit < units; unit++) {
            pi_index rest = unit;
            const pi_index blk = rest % sp.blocks;
            rest /= sp.blocks;
            const pi_index ch = rest % sp.chunks;
            rest /= sp.chunks;
            const pi_index g = rest % s->groups, n = rest / s->groups;
            const pi_index j0 = ch * sp.nc, nc = p - j0 < sp.nc ? p - j0 : sp.nc;
            const pi_index q0 = panels * blk / sp.blocks, q1 = panels * (blk + 1) / sp.blocks;
            const char *xg = (const char *)x + n * x_ns + g * cg * x_cs;
            const CV(t) *wg = wp + g * panels * MR * kp;
            CV(t) *yg = y + (n * s->k + g * mg) * p + j0;
            const CV(t) *rg = r ? r + (n * s->k + g * mg) * p + j0 : NULL;
            for (pi_index pc = 0; pc < kp; pc += sp.kcb) {
                const pi_index kc = kp - pc < sp.kcb ? kp - pc : sp.kcb;
                const int first = pc == 0, last = pc + kc == kp;
                CV(pack_b)(s, xg, x_cs, x_hs, x_ws, k, pc, kc, j0, nc, NR, bp);
                for (pi_index sl = 0; sl * NR < nc; sl++) {
                    const int nr = (int)(nc - sl * NR < NR ? nc - sl * NR : NR);
                    const CV(t) *bs = bp + sl * NR * kc;
                    for (pi_index q = q0; q < q1; q++) {
                        const int m = (int)(mg - q * MR < MR ? mg - q * MR : MR);
                        const CV(t) *a = wg + q * MR * kp + pc * MR;
                        CV(t) *c = yg + q * MR * p + sl * NR;
                        pi_gemm_epi ep;
                        ep.alpha_d = 1.0;
                        ep.alpha_f = 1.0f;
                        ep.first = first;
                        ep.last = last;
                        ep.act = act;
                        ep.bias = NULL;
                        ep.r = NULL;
                        ep.r_rs = 0;
                        if (last && rg) {
                            const CV(t) *rs = rg + q * MR * p + sl * NR;
                            if (nr == NR) {
                                ep.r = rs;
                                ep.r_rs = p * es;
                            } else {
                                for (int i = 0; i < m; i++)
                                    for (int j = 0; j < NR; j++)
                                        rt[i * NR + j] = j < nr ? rs[i * p + j] : 0;
                                ep.r = rt;
                                ep.r_rs = NR * es;
                            }
                        }
                        if (nr == NR) {
                            fn(m, kc, a, bs, NR * es, c, p * es, &ep);
                        } else {
                            if (!first)
                                for (int i = 0; i < m; i++)
                                    for (int j = 0; j < NR; j++)
                                        ct[i * NR + j] = j < nr ? c[i * p + j] : 0;
                            fn(m, kc, a, bs, NR * es, ct, NR * es, &ep);
                            for (int i = 0; i < m; i++)
                                for (int j = 0; j < nr; j++)
                                    c[i * p + j] = ct[i * NR + j];
                        }
                        if (last && clip)
                            for (int i = 0; i < m; i++)
                                for (int j = 0; j < nr; j++)
                                    c[i * p + j] = CV(clamp)(c[i * p + j], clip_lo, clip_hi);
                    }
                }
            }
        }
    }
    return PI_OK;
}

/* One plane into the phase-split padded buffer: ph[phase][row][t] holds padded
 * column t*sw + phase of padded row `row` (zeros outside the input). */
static void CV(dw_fill)(const pi_conv2d_shape *s, cv_dw_geom g, const char *xc, pi_index x_hs,
                        pi_index x_ws, CV(t) *ph)
{
    for (pi_index f = 0; f < s->sw; f++)
        for (pi_index row = 0; row < g.rows; row++) {
            CV(t) *d = ph + (f * g.rows + row) * g.width;
            const pi_index iy = row - s->pad_t;
            if (iy < 0 || iy >= s->h) {
                for (pi_index t = 0; t < g.width; t++) d[t] = 0;
                continue;
            }
            /* t*sw + f - pad_l is inside [0, w) for t in [lo, hi). */
            const char *src = xc + iy * x_hs;
            const pi_index x0 = f - s->pad_l;
            pi_index lo = x0 >= 0 ? 0 : cv_cdiv(-x0, s->sw);
            pi_index hi = x0 < s->w ? cv_cdiv(s->w - x0, s->sw) : 0;
            if (lo > g.width) lo = g.width;
            if (hi > g.width) hi = g.width;
            if (hi < lo) hi = lo;
            for (pi_index t = 0; t < lo; t++) d[t] = 0;
            if (s->sw == 1 && x_ws == (pi_index)sizeof(CV(t))) {
                if (hi > lo)
                    memcpy(d + lo, src + (x0 + lo) * x_ws, (size_t)(hi - lo) * sizeof(CV(t)));
            } else {
                for (pi_index t = lo; t < hi; t++) d[t] = CV_AT(src, (t * s->sw + x0) * x_ws);
            }
            for (pi_index t = hi; t < g.width; t++) d[t] = 0;
        }
}

/* The portable depthwise rows of one plane (any element type). */
static void CV(dw_plane)(const pi_conv2d_shape *s, cv_dw_geom g, const CV(t) *ph,
                         const CV(t) *w, CV(t) bias, const CV(t) *r, int act, int clip,
                         CV(t) lo, CV(t) hi, CV(t) *y)
{
    const pi_index pstride = g.rows * g.width;
    for (pi_index oy = 0; oy < s->oh; oy++) {
        CV(t) acc[64];
        for (pi_index x0 = 0; x0 < s->ow; x0 += 64) {
            const pi_index n = s->ow - x0 < 64 ? s->ow - x0 : 64;
            for (pi_index i = 0; i < n; i++) acc[i] = bias;
            for (pi_index ky = 0; ky < s->kh; ky++) {
                const CV(t) *row = ph + (oy * s->sh + ky * s->dh) * g.width + x0;
                pi_index q = 0, f = 0; /* kx*dw = q*sw + f, as in the AVX2 rows */
                for (pi_index kx = 0; kx < s->kw; kx++) {
                    const CV(t) *src = row + f * pstride + q;
                    for (f += s->dw; f >= s->sw; f -= s->sw) q++;
                    const CV(t) wv = w[ky * s->kw + kx];
                    for (pi_index i = 0; i < n; i++) acc[i] += wv * src[i];
                }
            }
            for (pi_index i = 0; i < n; i++) {
                CV(t) v = acc[i];
                if (r) v += r[oy * s->ow + x0 + i];
                v = PI_CONV_ACT(v, act);
                if (clip) v = CV(clamp)(v, lo, hi);
                y[oy * s->ow + x0 + i] = v;
            }
        }
    }
}

PI_EXPORT int CV_PUB(_conv2d_depthwise)(const pi_conv2d_shape *s, const CV(t) *x, pi_index x_ns,
                                        pi_index x_cs, pi_index x_hs, pi_index x_ws,
                                        const CV(t) *w, const CV(t) *bias, const CV(t) *r,
                                        int act, int clip, CV(t) clip_lo, CV(t) clip_hi,
                                        CV(t) *y, void *ws, pi_index ws_bytes)
{
    const pi_index es = (pi_index)sizeof(CV(t));
    if (s->groups != s->c || s->k != s->c || act < PI_ACT_NONE || act > PI_ACT_TANH)
        return PI_ERR_ARG;
    const cv_dw_geom g = cv_dw(s);
    const pi_index slot = cv_round64(s->sw * g.rows * g.width * es);
    if (ws_bytes < slot * pi_num_threads || ws == NULL)
        return PI_ERR_WORKSPACE;
    const pi_index planes = s->n * s->c, p = s->oh * s->ow;
    /* One thread's time: a multiply-add per tap of each output, 0.3 ns
     * (f32 3x3 over 64 planes of 56x56 took 0.33 ns a tap at 1 thread), and
     * the copy of the plane's padded rows. */
    int nt = pi_threads_for((double)planes * (double)p * (double)(s->kh * s->kw + 1) *
                                3.0 * (double)es * PI_NS_PER_BYTE,
                            (double)planes);
#if PI_X86 && PI_CONV_F32
    const int avx2 = pi_current_isa >= PI_ISA_AVX2;
#endif
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 4)
    for (pi_index pl = 0; pl < planes; pl++) {
        CV(t) *ph = (CV(t) *)((char *)ws + (pi_index)omp_get_thread_num() * slot);
        const pi_index n = pl / s->c, c = pl % s->c;
        CV(dw_fill)(s, g, (const char *)x + n * x_ns + c * x_cs, x_hs, x_ws, ph);
        const CV(t) b = bias ? bias[c] : (CV(t))0;
        const CV(t) *rp = r ? r + pl * p : NULL;
#if PI_X86 && PI_CONV_F32
        if (avx2) {
            cv_dw_plane_avx2_f32(s, g, ph, w + c * s->kh * s->kw, b, rp, act, clip, clip_lo,
                                 clip_hi, y + pl * p);
            continue;
        }
#endif
        CV(dw_plane)(s, g, ph, w + c * s->kh * s->kw, b, rp, act, clip, clip_lo, clip_hi,
                     y + pl * p);
    }
    return PI_OK;
}

#undef CV_CAT_
#undef CV_CAT
#undef CV
#undef CV_PUB
#undef CV_AT

#endif
