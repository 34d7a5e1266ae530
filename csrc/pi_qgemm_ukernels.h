/* The one list of u8 x s8 -> s32 GEMM micro-kernels (STYLE.md 5), their
 * packed-operand layout and the epilogue they apply in registers.
 *
 *   X(name, isa, MR, NR, KU, ES, WB)
 *
 * isa   portable | avx2 | avx512vnni (PI_QGEMM_ISA_<isa>);
 * MR x NR the s32 accumulator tile held in registers;
 * KU    consecutive k values one multiply instruction sums per output lane
 *       (2 for vpmaddwd, 4 for vpdpbusd);
 * ES    bytes per packed element of A and B: 2 where u8/s8 are widened to
 *       16 bits for vpmaddwd, 1 where vpdpbusd takes bytes as they are.
 *
 * AVX2 has two routes.  vpmaddubsw (u8 x s8 -> s16 pair sums) saturates when
 * a pair exceeds 32767 (255*127*2 = 64770), so for full-range weights the
 * exact route widens both operands to 16 bits at packing and multiplies with
 * vpmaddwd (s16 x s16 -> s32 pair sums, |pair| <= 2*255*128 < 2^31): exact
 * for every input, at twice the packed bytes and 16 MACs per multiply.  When
 * every |b - b_zero| <= 64 (7-bit weights: what quantize_dynamic makes on
 * AVX2 without VNNI, ONNX Runtime's reduce_range), B is packed as the bytes
 * b - b_zero, a pair sum is at most 2*255*64 = 32640 < 32767 and cannot
 * saturate, so vpmaddubsw + vpmaddwd-by-ones (s16 pairs -> s32) is exact too:
 * 32 MACs per vpmaddubsw, half the bytes to load and pack.
 *
 * Packed B (pi_u8s8_pack_b): a 64-byte header (magic, list index, k, n), then
 * one block per NR-column sliver: NR int32 b_zero, NR int32 b_corr
 * (k*b_zero[j] - sum_k b[k][j]), then ceil(k/KU) groups of NR*KU elements,
 * b[g*KU + u][j] at element (g*NR + j)*KU + u, zero past k and past n.
 * A WB 7 kernel gets b - b_zero in place of b and zero points of 0 (the same
 * product, with the zero point folded in), so its values fit in 7 bits.
 * Packed A (per thread, in the workspace): MR-row panels, a[i][g*KU + u] at
 * element (g*MR + i)*KU + u, zero past k.
 *
 * Dispatch: the kernel is chosen when B is packed (the best of the current ISA
 * whose WB the weights fit, first in list order, or the one the caller names;
 * packing refuses a WB 7 kernel for weights that do not fit) and recorded in
 * the header; the GEMM refuses a
 * packed B whose kernel this CPU/ISA setting cannot run.  The last portable
 * entry has the VNNI layout (KU 4, bytes) and exists so the tests check that
 * layout's packing and driver on machines without AVX-512.
 */
#ifndef PI_QGEMM_UKERNELS_H
#define PI_QGEMM_UKERNELS_H

#define PI_QGEMM_UKERNELS(X) \
    X(pi_u8s8_gemm_4x24k4w7__avx2,    avx2,       4, 24, 4, 1, 7) \
    X(pi_u8s8_gemm_6x16__avx2,        avx2,       6, 16, 2, 2, 8) \
    X(pi_u8s8_gemm_8x32__avx512vnni,  avx512vnni, 8, 32, 4, 1, 8) \
    X(pi_u8s8_gemm_4x8__portable,     portable,   4,  8, 2, 2, 8) \
    X(pi_u8s8_gemm_4x16k4__portable,  portable,   4, 16, 4, 1, 8)

#define PI_QGEMM_ISA_portable 0
#define PI_QGEMM_ISA_avx2 1
#define PI_QGEMM_ISA_avx512vnni 3   /* AVX-512 level and the avx512vnni cpuid bit */

#define PI_QGEMM_MAX_MR 8
#define PI_QGEMM_MAX_NR 32

/* The epilogue of one tile: acc -> corrected s32 -> (float -> scale, bias,
 * activation) -> (quantize to u8).  All NR-wide arrays are valid for NR
 * columns (zero-padded past n by the caller). */
typedef struct {
    int kind;              /* PI_QOUT_* */
    int act;               /* PI_ACT_* (float and u8 outputs) */
    int a_zero;
    int out_zero;
    float out_scale;
    const int *rowsum;     /* mr values: sum over k of A's row */
    const int *b_zero;     /* NR, or NULL: B packed as b - b_zero (WB 7 kernels) */
    const int *b_corr;     /* NR */
    const float *scale;    /* NR: a_scale * b_scale[j] (float and u8 outputs); with
                              row_scale, b_scale[j] alone */
    const float *bias;     /* NR or NULL */
    /* NULL: A has one zero point (a_zero) and scale[j] is the whole scale.
     * Else A was quantized per row (pi_f32u8s8_gemm_rows): row i of the tile
     * has zero point row_zero[i] (a_zero unused) and scale
     * float32(row_scale[i] * scale[j]), the product rounded once before it
     * multiplies float(v), as a_scale * b_scale[j] is for one zero point.
     * mr values each.  Checked once a tile, so one zero point pays nothing. */
    const float *row_scale;
    const int *row_zero;
} pi_qgemm_epi;

/* C[0:mr, 0:NR] (row stride c_rs bytes, columns contiguous, element size 4
 * for s32/f32 and 1 for u8) = epilogue(A_panel @ B_sliver) over kg groups. */
#define PI_QGEMM_UKERNEL_ARGS \
    int mr, long long kg, const void *a, const void *b, void *c, long long c_rs, \
    const pi_qgemm_epi *ep

#define PI_QGEMM_DECLARE_(name, isa, MR, NR, KU, ES, WB) void name(PI_QGEMM_UKERNEL_ARGS);
PI_QGEMM_UKERNELS(PI_QGEMM_DECLARE_)
#undef PI_QGEMM_DECLARE_

typedef void (*pi_qgemm_ukfn)(PI_QGEMM_UKERNEL_ARGS);

typedef struct {
    const char *name;
    int isa, mr, nr, ku, es, wb;
    pi_qgemm_ukfn fn;
} pi_qgemm_ukernel;

/* Round half to even and saturate to [lo, hi], as ONNX QuantizeLinear:
 * saturate(round(x / scale) + zero).  The float clamp first keeps the
 * conversion defined (NaN goes to lo, the x86 max/min convention). */
static inline int pi_quantize_one(float x, float scale, int zero, int lo, int hi)
{
    float q = x / scale;
    q = q > -1073741824.0f ? q : -1073741824.0f;
    q = q < 1073741824.0f ? q : 1073741824.0f;
    int v = (int)__builtin_rintf(q) + zero;
    return v < lo ? lo : v > hi ? hi : v;
}

/* One thread's time per u8 x s8 multiply-add (pi_threads_for): the AVX2 7-bit
 * kernel's instruction bound is 89-94 GMAC/s on a Zen 3 core
 * (bench/qgemm_peak.c), the whole call 88-96% of it. */
#define PI_NS_PER_MAC_I8 0.012

/* ---- the packed B, as pi_qgemm.c writes it and pi_qconv.c reads it ---------- */
#define PI_QGEMM_PACKED_MAGIC 0x38697170 /* "pqi8" */
#define PI_QGEMM_PACKED_HEADER 64        /* bytes before the first sliver */
#define PI_QGEMM_L2_BUDGET (160 * 1024)   /* bytes of packed A a block may fill */

typedef struct {
    int magic, index; /* index: the micro-kernel (pi_qgemm_ukernel_at) laid out for */
    pi_index k, n;
} pi_qgemm_packed_hdr;

/* Entry i of pi_qgemm.c's micro-kernel list (the index a packed B records). */
const pi_qgemm_ukernel *pi_qgemm_ukernel_at(int i);

static inline pi_index pi_qgemm_cdiv(pi_index a, pi_index b) { return (a + b - 1) / b; }

/* Bytes of one packed sliver of NR columns: NR column sums (8 bytes each) and
 * the K rounded up to KU, rounded up to 64. */
static inline pi_index pi_qgemm_sliver_bytes(const pi_qgemm_ukernel *u, pi_index k)
{
    pi_index b = (pi_index)u->nr * 8 + pi_qgemm_cdiv(k, u->ku) * u->nr * u->ku * u->es;
    return (b + 63) / 64 * 64;
}

/* Rows of an A block: fills the L2 budget, a multiple of MR, at most 16 panels
 * (256 rows measured no different from 16 panels, 2026-11-25, noisy). */
static inline pi_index pi_qgemm_block_rows(const pi_qgemm_ukernel *u, pi_index k)
{
    pi_index row = pi_qgemm_cdiv(k, u->ku) * u->ku * u->es;
    pi_index mc = row > 0 ? PI_QGEMM_L2_BUDGET / row / u->mr * u->mr : 16 * u->mr;
    if (mc < u->mr) mc = u->mr;
    if (mc > 16 * u->mr) mc = 16 * u->mr;
    return mc;
}

#endif
