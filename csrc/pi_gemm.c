/* GEMM: C[t] = act(alpha * A[t] @ B[t] + bias + R[t]) for f32 and f64, the
 * BLIS way (STYLE.md 6): five portable loops (pi_gemm_driver.inc) around one
 * register-blocked micro-kernel picked at run time from the one list
 * (pi_gemm_ukernels.h).  Workspace is the caller's; nothing is allocated.
 *
 * Threads (OpenMP): as many of pi_num_threads as pi_threads_for gives the
 * call's estimated single-thread time (pi_gemm_single_ns), and then:
 *   - batch >= threads of small items (attention heads): one item per thread;
 *   - small M (<= 16, or under 4 register tiles a thread): N is split into
 *     whole NR slivers, each thread runs alone, and when B's columns are
 *     contiguous B is not packed at all but streamed from memory (packing it
 *     would cost as much as the math: 1x768x3072 reads each B element once;
 *     measured 3-5x slower packed).  Streaming calls pick the kernel that
 *     reads each B sliver the fewest times (1x64 for M = 1, 4x24 for M = 8 on
 *     AVX2; see pi_gemm_ukernels.h);
 *   - also when M is small next to N (m <= n/(4*threads)), N is split;
 *   - otherwise M is split: the team packs one B panel together (it stays in
 *     the shared L3) and each thread packs its own A blocks into its L2.
 */
#include <omp.h>
#include "pi_internal.h"
#include "pi_gemm_ukernels.h"
#include "pi_vmath.h"

#define PI_GEMM_ENTRY_(name, dt, ct, isa, MR, NR, KC, MC, NC) \
    {#name, (int)sizeof(ct), PI_GEMM_ISA_##isa, MR, NR, KC, MC, NC, (void *)name},
const pi_gemm_ukernel pi_gemm_ukernel_table[] = {PI_GEMM_UKERNELS(PI_GEMM_ENTRY_)};
const int pi_gemm_ukernel_count =
    (int)(sizeof(pi_gemm_ukernel_table) / sizeof(pi_gemm_ukernel_table[0]));
int pi_gemm_forced_ukernel = -1;

/* The kernel for this element size and M on the current ISA: of the best ISA
 * not above pi_current_isa, the first list entry with MR > 1, or for M == 1
 * the first with MR == 1 when that ISA has one. */
static const pi_gemm_ukernel *pi_gemm_select(pi_index elem_size, pi_index m)
{
    int f = pi_gemm_forced_ukernel;
    if (f >= 0 && f < pi_gemm_ukernel_count && pi_gemm_ukernel_table[f].elem_size == elem_size)
        return &pi_gemm_ukernel_table[f];
    const pi_gemm_ukernel *best = NULL, *row = NULL;
    for (int i = 0; i < pi_gemm_ukernel_count; i++) {
        const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[i];
        if (u->elem_size != elem_size || u->isa > pi_current_isa)
            continue;
        if (u->mr > 1 && (best == NULL || u->isa > best->isa))
            best = u;
        if (u->mr == 1 && (row == NULL || u->isa > row->isa))
            row = u;
    }
    return m == 1 && row && best && row->isa == best->isa ? row : best;
}

/* Micro-kernel calls (row passes over one B sliver) for m rows: full MR tiles,
 * then the 8/4/2/1-row bodies of the remainder (pi_gemm_ukernel.inc). */
static pi_index pi_gemm_passes(pi_index m, int mr)
{
    pi_index rem = m % mr, p = m / mr;
    for (; rem; rem &= rem - 1)
        p++;
    return p;
}

/* Up to this many rows, a call picks its kernel by sliver passes
 * (pi_gemm_select_small_m); taller ones run the default kernel (measured equal
 * at 122..1024 rows for packed B, Zen 3). */
#define PI_GEMM_PASS_RULE_M 16

/* The kernel for a call of m rows, whether B is streamed or packed ahead: the
 * row kernel for M = 1; for 2 <= m <= PI_GEMM_PASS_RULE_M, of the default
 * kernel's ISA, the MR > 1 entry with the fewest sliver passes per column (8
 * rows run as 2 passes of 4x24, not 6 + 2 rows over 16 columns); else
 * pi_gemm_select's. */
static const pi_gemm_ukernel *pi_gemm_select_small_m(pi_index elem_size, pi_index m)
{
    const pi_gemm_ukernel *best = pi_gemm_select(elem_size, m);
    if (!best || pi_gemm_forced_ukernel >= 0 || m < 2 || m > PI_GEMM_PASS_RULE_M)
        return best;
    for (int i = 0; i < pi_gemm_ukernel_count; i++) {
        const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[i];
        if (u->elem_size != elem_size || u->isa != best->isa || u->mr < 2)
            continue;
        /* passes(u)/nr(u) < passes(best)/nr(best) */
        if (pi_gemm_passes(m, u->mr) * best->nr < pi_gemm_passes(m, best->mr) * u->nr)
            best = u;
    }
    return best;
}

static pi_index round64(pi_index x) { return (x + 63) / 64 * 64; }

/* One thread's time for batch products m x n x k (pi_threads_for): the flops
 * at micro-kernel speed, plus each B element read once from memory, which is
 * what a small-M call takes (1x768x3072 streams 9 MB of B for 5 Mflop). */
static double pi_gemm_single_ns(int elem_size, pi_index batch, pi_index m, pi_index n,
                                pi_index k)
{
    double flops = 2.0 * (double)m * (double)n * (double)k;
    double bbytes = (double)k * (double)n * (double)elem_size;
    return (double)batch * (flops * PI_NS_PER_FLOP * (elem_size / 4) + bbytes * PI_NS_PER_BYTE);
}

/* NC as the loops use it: whole NR slivers (guards a list entry that is not). */
static pi_index pi_gemm_nc(const pi_gemm_ukernel *u)
{
    pi_index nc = u->nc / u->nr * u->nr;
    return nc > 0 ? nc : u->nr;
}

/* Per-thread slot: a packed A block (MC x KC) then a packed B panel (KC x NC),
 * each clamped to the problem; one slot per thread. */
static pi_index pi_gemm_layout(const pi_gemm_ukernel *u, pi_index m, pi_index n, pi_index k,
                               int nt, pi_index *abytes, pi_index *bbytes)
{
    if (k <= 0 || m <= 0 || n <= 0) {
        *abytes = *bbytes = 0;
        return 0;
    }
    pi_index kc = k < u->kc ? k : u->kc;
    pi_index mr = (m + u->mr - 1) / u->mr * u->mr;
    pi_index mc = mr < u->mc ? mr : u->mc;
    pi_index nr = (n + u->nr - 1) / u->nr * u->nr;
    pi_index nc = nr < pi_gemm_nc(u) ? nr : pi_gemm_nc(u);
    *abytes = round64(mc * kc * u->elem_size);
    *bbytes = round64(kc * nc * u->elem_size);
    return (pi_index)(nt < 1 ? 1 : nt) * (*abytes + *bbytes);
}

PI_EXPORT pi_index pi_gemm_workspace_bytes(int elem_size, pi_index m, pi_index n, pi_index k)
{
    const pi_gemm_ukernel *u = pi_gemm_select(elem_size, m);
    const pi_gemm_ukernel *s = pi_gemm_select_small_m(elem_size, m);
    pi_index a, b;
    if (!u)
        return 0;
    pi_index need = pi_gemm_layout(u, m, n, k, pi_num_threads, &a, &b);
    /* Whether B is streamed is decided per call (its strides): room for both. */
    pi_index need_s = pi_gemm_layout(s, m, n, k, pi_num_threads, &a, &b);
    return need > need_s ? need : need_s;
}

PI_EXPORT int pi_gemm_ukernel_info(int index, int *elem_size, int *isa, int *mr, int *nr,
                                   int *kc, int *mc, int *nc, const char **name)
{
    if (index < 0 || index >= pi_gemm_ukernel_count)
        return PI_ERR_ARG;
    const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[index];
    *elem_size = u->elem_size;
    *isa = u->isa;
    *mr = u->mr;
    *nr = u->nr;
    *kc = u->kc;
    *mc = u->mc;
    *nc = u->nc;
    *name = u->name;
    return PI_OK;
}

/* ---- pre-packed B: layout and policy shared by the f32/f64 drivers ---- */

/* What pi_<dtype>_gemm_pack_b writes before the slivers: the micro-kernel
 * the slivers are laid out for (its NR) and the shape, so a call needs no
 * other description of B and a stale packing (ISA lowered since) is refused. */
#define PI_GEMM_PACKED_MAGIC 0x42474950u /* "PIGB" */
#define PI_GEMM_PACKED_HDR_BYTES 64
typedef struct {
    unsigned magic;
    int elem_size, ukernel, nr;
    pi_index k, n;
} pi_gemm_packed_hdr;

static const pi_gemm_ukernel *pi_gemm_packed_ukernel(const pi_gemm_packed_hdr *h)
{
    if (h->ukernel < 0 || h->ukernel >= pi_gemm_ukernel_count)
        return NULL;
    const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[h->ukernel];
    if (u->elem_size != h->elem_size || u->nr != h->nr || u->isa > pi_current_isa)
        return NULL;
    return u;
}

static pi_index pi_gemm_packed_kc(const pi_gemm_ukernel *u, pi_index m, pi_index k);

/* One thread's packed A block: at most MC x KC, clamped to the problem. */
static pi_index pi_gemm_packed_slot_bytes(const pi_gemm_ukernel *u, pi_index m, pi_index k)
{
    pi_index mr = (m + u->mr - 1) / u->mr * u->mr;
    pi_index mc = mr < u->mc ? mr : u->mc;
    pi_index kc = pi_gemm_packed_kc(u, m, k);
    return round64((mc > 0 ? mc : 1) * (kc > 0 ? kc : 1) * u->elem_size);
}

/* Split N or M by the busiest thread's work, counted in micro-kernel calls
 * over all of K, with the packing of one MR-row panel of A counted as one
 * call (the scalar packing of MR x K elements takes about as long as the
 * MR x NR x K multiply-adds): split N packs all of A in every thread.  Ties
 * go to N (each B sliver then streams through one core only). */
static int pi_gemm_packed_split_n(const pi_gemm_ukernel *u, pi_index m, pi_index n, int nt)
{
    pi_index nsl = (n + u->nr - 1) / u->nr, panels = (m + u->mr - 1) / u->mr;
    pi_index per_n = (nsl + nt - 1) / nt * panels + panels;
    pi_index per_m = (panels + nt - 1) / nt * (nsl + 1);
    return per_n <= per_m;
}

/* Threads for one packed call: as many as pi_threads_for gives its estimated
 * single-thread time (pi_gemm_single_ns), at most one per sliver or panel of
 * the split dimension. */
static int pi_gemm_packed_threads(const pi_gemm_ukernel *u, pi_index m, pi_index n, pi_index k)
{
    int nt = pi_threads_for(pi_gemm_single_ns(u->elem_size, 1, m, n, k), pi_num_threads);
    if (nt == 1)
        return 1;
    pi_index units = pi_gemm_packed_split_n(u, m, n, nt) ? (n + u->nr - 1) / u->nr
                                                         : (m + u->mr - 1) / u->mr;
    return units < nt ? (int)(units > 0 ? units : 1) : nt;
}

/* The most threads a packed call of these sizes may use, whatever the fork
 * cost: what its workspace is sized for. */
static int pi_gemm_packed_max_threads(const pi_gemm_ukernel *u, pi_index m, pi_index n)
{
    pi_index nsl = (n + u->nr - 1) / u->nr, panels = (m + u->mr - 1) / u->mr;
    pi_index units = nsl > panels ? nsl : panels;
    return units < pi_num_threads ? (int)(units > 0 ? units : 1) : pi_num_threads;
}

/* The k block of a packed call: all of K when each B sliver is read by one
 * pass of the kernel (m <= MR: no sliver to keep in L1 for a next pass, and
 * C is read and written once), else even blocks of at most KC. */
static pi_index pi_gemm_packed_kc(const pi_gemm_ukernel *u, pi_index m, pi_index k)
{
    if (m <= u->mr || k <= u->kc)
        return k;
    pi_index nkb = (k + u->kc - 1) / u->kc;
    return (k + nkb - 1) / nkb;
}

PI_EXPORT pi_index pi_gemm_packed_b_bytes(int elem_size, pi_index m, pi_index k, pi_index n)
{
    const pi_gemm_ukernel *u = pi_gemm_select_small_m(elem_size, m);
    if (!u || k < 0 || n < 0)
        return 0;
    return PI_GEMM_PACKED_HDR_BYTES + round64((n + u->nr - 1) / u->nr * u->nr * k * elem_size);
}

PI_EXPORT int pi_gemm_packed_b_ukernel(const void *packed)
{
    const pi_gemm_packed_hdr *h = (const pi_gemm_packed_hdr *)packed;
    return h && h->magic == PI_GEMM_PACKED_MAGIC ? h->ukernel : -1;
}

PI_EXPORT pi_index pi_gemm_packed_workspace_bytes(const void *packed, pi_index m)
{
    const pi_gemm_packed_hdr *h = (const pi_gemm_packed_hdr *)packed;
    const pi_gemm_ukernel *u;
    if (!h || h->magic != PI_GEMM_PACKED_MAGIC || !(u = pi_gemm_packed_ukernel(h)) || m <= 0)
        return 0;
    return pi_gemm_packed_max_threads(u, m, h->n) * pi_gemm_packed_slot_bytes(u, m, h->k);
}

#define GD_T float
#define GD_SFX f32
#define GD_ALPHA alpha_f
#include "pi_gemm_driver.inc"
#undef GD_T
#undef GD_SFX
#undef GD_ALPHA

#define GD_T double
#define GD_SFX f64
#define GD_ALPHA alpha_d
#include "pi_gemm_driver.inc"
#undef GD_T
#undef GD_SFX
#undef GD_ALPHA

PI_EXPORT int pi_f32_gemm(pi_index batch, pi_index m, pi_index n, pi_index k, float alpha,
                          const float *a, pi_index a_bs, pi_index a_rs, pi_index a_cs,
                          const float *b, pi_index b_bs, pi_index b_rs, pi_index b_cs,
                          const float *bias,
                          const float *r, pi_index r_bs, pi_index r_rs, pi_index r_cs,
                          int activation,
                          float *c, pi_index c_bs, pi_index c_rs, pi_index c_cs,
                          void *ws, pi_index ws_bytes)
{
    return gemm_f32(batch, m, n, k, alpha, a, a_bs, a_rs, a_cs, b, b_bs, b_rs, b_cs, bias,
                    r, r_bs, r_rs, r_cs, activation, c, c_bs, c_rs, c_cs, ws, ws_bytes);
}

PI_EXPORT int pi_f64_gemm(pi_index batch, pi_index m, pi_index n, pi_index k, double alpha,
                          const double *a, pi_index a_bs, pi_index a_rs, pi_index a_cs,
                          const double *b, pi_index b_bs, pi_index b_rs, pi_index b_cs,
                          const double *bias,
                          const double *r, pi_index r_bs, pi_index r_rs, pi_index r_cs,
                          int activation,
                          double *c, pi_index c_bs, pi_index c_rs, pi_index c_cs,
                          void *ws, pi_index ws_bytes)
{
    return gemm_f64(batch, m, n, k, alpha, a, a_bs, a_rs, a_cs, b, b_bs, b_rs, b_cs, bias,
                    r, r_bs, r_rs, r_cs, activation, c, c_bs, c_rs, c_cs, ws, ws_bytes);
}

PI_EXPORT int pi_f32_gemm_pack_b(pi_index m, pi_index k, pi_index n, const float *b,
                                 pi_index b_rs, pi_index b_cs, void *packed, pi_index packed_bytes)
{
    return pack_b_f32(m, k, n, b, b_rs, b_cs, packed, packed_bytes);
}

PI_EXPORT int pi_f64_gemm_pack_b(pi_index m, pi_index k, pi_index n, const double *b,
                                 pi_index b_rs, pi_index b_cs, void *packed, pi_index packed_bytes)
{
    return pack_b_f64(m, k, n, b, b_rs, b_cs, packed, packed_bytes);
}

PI_EXPORT int pi_f32_gemm_packed(pi_index m, float alpha, const float *a, pi_index a_rs,
                                 pi_index a_cs, const void *packed_b, const float *bias,
                                 const float *r, pi_index r_rs, pi_index r_cs, int activation,
                                 float *c, pi_index c_rs, pi_index c_cs,
                                 void *ws, pi_index ws_bytes)
{
    return gemm_packed_f32(m, alpha, a, a_rs, a_cs, packed_b, bias, r, r_rs, r_cs, activation,
                           c, c_rs, c_cs, ws, ws_bytes);
}

PI_EXPORT int pi_f64_gemm_packed(pi_index m, double alpha, const double *a, pi_index a_rs,
                                 pi_index a_cs, const void *packed_b, const double *bias,
                                 const double *r, pi_index r_rs, pi_index r_cs, int activation,
                                 double *c, pi_index c_rs, pi_index c_cs,
                                 void *ws, pi_index ws_bytes)
{
    return gemm_packed_f64(m, alpha, a, a_rs, a_cs, packed_b, bias, r, r_rs, r_cs, activation,
                           c, c_rs, c_cs, ws, ws_bytes);
}
