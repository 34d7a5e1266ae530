/*
 * pi_vmath.h -- vectorised float math for kernels and GEMM epilogues.
 *
 * Everything is static inline and carries its ISA's target attribute, so any
 * kernel source can include this header and call the function matching the
 * path it was dispatched to:
 *
 *   __m256  pi_exp_ps_avx2(__m256)      __m512  pi_exp_ps_avx512(__m512)
 *   __m256  pi_tanh_ps_avx2(__m256)     __m512  pi_tanh_ps_avx512(__m512)
 *   __m256  pi_erf_ps_avx2(__m256)      __m512  pi_erf_ps_avx512(__m512)
 *   __m256  pi_sigmoid_ps_avx2(__m256)  __m512  pi_sigmoid_ps_avx512(__m512)
 *   __m256  pi_act_ps_avx2(__m256, act) __m512  pi_act_ps_avx512(__m512, act)
 *   __m256d pi_act_pd_avx2(__m256d, act) __m512d pi_act_pd_avx512(__m512d, act)
 *   float   pi_act_f32(float, act)      double  pi_act_f64(double, act)
 *   (also pi_gelu_ps_*, pi_gelu_tanh_ps_*, pi_silu_ps_*, pi_log_ps_*)
 *
 * `act` is a PI_ACT_* code; unknown codes behave as PI_ACT_NONE.
 *
 * One implementation, two widths: the float code below is written once over a
 * handful of width-neutral macros (V_ADD, V_FMA, V_LT, V_SEL, ...) and this
 * header includes itself twice to instantiate it for AVX2 (8 lanes, masks are
 * vectors) and AVX-512 (16 lanes, masks are __mmask16).  The AVX-512 copy can
 * not run on the development machine, so keeping it the *same text* as the
 * tested AVX2 copy is what makes it trustworthy.
 *
 * No -ffast-math is assumed: NaN propagates through every function, +-Inf
 * give the limits (exp(-inf)=0, exp(inf)=inf, tanh(+-inf)=+-1,
 * sigmoid(-inf)=0, erf(+-inf)=+-1, gelu/silu(-inf)=-0, gelu/silu(inf)=inf),
 * large |x| saturates, subnormal results are produced (not flushed).
 *
 * Accuracy, measured by csrc/tests/test_vmath_norm.c against libm in double:
 * dense sweeps of each function's range (2^19 points), [-2, 2] at 2^-17 steps,
 * 2^19 log-spaced magnitudes 2^-149..2^127 of both signs, plus specials.
 * Max error in ulp of the float32 result, AVX2 path (2026-11, Zen 3):
 *   exp 1.01   tanh 1.50   erf 2.41 (so relative < 2.9e-7, also near 0)
 *   sigmoid 2.61   log 1.06   silu 3.54   gelu 6.98   gelu_tanh 3.99
 * Activations whose result is below ~1e-30 (far negative tails of gelu and
 * silu) go through subnormal intermediates: relative error up to 2e-5 there.
 * (The exact figures of the last run are in the test's output.)
 */
#if defined(PI_VMATH_MACROS)
/* ---- the width-neutral macro set ---------------------------------------------
 * Kernel sources write a vector loop once over these macros and instantiate it
 * per ISA (see pi_softmax.c):  #define PI_VMATH_MACROS 256 (or 512, or 0 to
 * #undef them all) then #include "pi_vmath.h".  VF is the float vector, VM a
 * comparison mask (a vector on AVX2, __mmask16 on AVX-512), VTM a tail mask for
 * V_MLOAD/V_MSTORE. */
#if PI_VMATH_MACROS == 256
#define PI_VW 8
#define VF __m256
#define VI __m256i
#define VM __m256
#define VTM __m256i
#define PI_VFN(name) pi_##name##_avx2
#define PI_VTARGET PI_TARGET_AVX2
#define V_SET1(c) _mm256_set1_ps(c)
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_STREAM(p, v) _mm256_stream_ps((p), (v)) /* p 32-byte aligned */
#define V_TAIL(rem) pi_tailmask_avx2(rem) /* first rem lanes, 0 < rem < PI_VW */
#define V_TAIL_VM(t) _mm256_castsi256_ps(t)
#define V_MLOAD(p, t) _mm256_maskload_ps((p), (t)) /* off lanes read as 0, never touched */
#define V_MSTORE(p, t, v) _mm256_maskstore_ps((p), (t), (v))
#define V_HSUM(v) pi_hsum_ps_avx2(v)
#define V_HMAX(v) pi_hmax_ps_avx2(v)
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_SQRT _mm256_sqrt_ps
#define V_FMA _mm256_fmadd_ps /* a*b+c */
#define V_FNMA _mm256_fnmadd_ps /* c-a*b */
#define V_FMS _mm256_fmsub_ps /* a*b-c */
#define V_MIN _mm256_min_ps /* (a<b)?a:b: the second operand if either is NaN */
#define V_MAX _mm256_max_ps /* (a>b)?a:b: the second operand if either is NaN */
#define V_AND _mm256_and_ps
#define V_OR _mm256_or_ps
#define V_XOR _mm256_xor_ps
#define V_ANDNOT _mm256_andnot_ps /* ~a & b */
#define V_RINT(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_LT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define V_GE(a, b) _mm256_cmp_ps((a), (b), _CMP_GE_OQ)
#define V_EQ(a, b) _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm256_cmp_ps((a), (b), _CMP_UNORD_Q)
#define V_SEL(m, f, t) _mm256_blendv_ps((f), (t), (m)) /* m ? t : f */
#define V_CVTI _mm256_cvtps_epi32
#define VI_SET1 _mm256_set1_epi32
#define VI_ADD _mm256_add_epi32
#define VI_SUB _mm256_sub_epi32
#define VI_SRAI _mm256_srai_epi32
#define VI_SLLI _mm256_slli_epi32
#define VI_AND _mm256_and_si256
#define V_CASTI _mm256_castsi256_ps
#define VI_CASTF _mm256_castps_si256
#define VI_CVTF _mm256_cvtepi32_ps
#elif PI_VMATH_MACROS == 512
#define PI_VW 16
#define VF __m512
#define VI __m512i
#define VM __mmask16
#define VTM __mmask16
#define PI_VFN(name) pi_##name##_avx512
#define PI_VTARGET PI_TARGET_AVX512
#define V_SET1(c) _mm512_set1_ps(c)
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_STREAM(p, v) _mm512_stream_ps((p), (v)) /* p 64-byte aligned */
#define V_TAIL(rem) ((__mmask16)((1u << (rem)) - 1u))
#define V_TAIL_VM(t) (t)
#define V_MLOAD(p, t) _mm512_maskz_loadu_ps((t), (p))
#define V_MSTORE(p, t, v) _mm512_mask_storeu_ps((p), (t), (v))
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_DIV _mm512_div_ps
#define V_SQRT _mm512_sqrt_ps
#define V_FMA _mm512_fmadd_ps /* a*b+c */
#define V_FNMA _mm512_fnmadd_ps /* c-a*b */
#define V_FMS _mm512_fmsub_ps /* a*b-c */
#define V_MIN _mm512_min_ps /* (a<b)?a:b: the second operand if either is NaN */
#define V_MAX _mm512_max_ps /* (a>b)?a:b: the second operand if either is NaN */
#define V_AND _mm512_and_ps
#define V_OR _mm512_or_ps
#define V_XOR _mm512_xor_ps
#define V_ANDNOT _mm512_andnot_ps /* ~a & b */
#define V_RINT(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_LT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define V_GE(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GE_OQ)
#define V_EQ(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define V_UNORD(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_UNORD_Q)
#define V_SEL(m, f, t) _mm512_mask_blend_ps((m), (f), (t)) /* m ? t : f */
#define V_CVTI _mm512_cvtps_epi32
#define VI_SET1 _mm512_set1_epi32
#define VI_ADD _mm512_add_epi32
#define VI_SUB _mm512_sub_epi32
#define VI_SRAI _mm512_srai_epi32
#define VI_SLLI _mm512_slli_epi32
#define VI_AND _mm512_and_si512
#define V_CASTI _mm512_castsi512_ps
#define VI_CASTF _mm512_castps_si512
#define VI_CVTF _mm512_cvtepi32_ps
#else
#undef PI_VW
#undef VF
#undef VI
#undef VM
#undef VTM
#undef PI_VFN
#undef PI_VTARGET
#undef V_SET1
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_STREAM
#undef V_TAIL
#undef V_TAIL_VM
#undef V_MLOAD
#undef V_MSTORE
#undef V_HSUM
#undef V_HMAX
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_SQRT
#undef V_FMA
#undef V_FNMA
#undef V_FMS
#undef V_MIN
#undef V_MAX
#undef V_AND
#undef V_OR
#undef V_XOR
#undef V_ANDNOT
#undef V_RINT
#undef V_LT
#undef V_GE
#undef V_EQ
#undef V_UNORD
#undef V_SEL
#undef V_CVTI
#undef VI_SET1
#undef VI_ADD
#undef VI_SUB
#undef VI_SRAI
#undef VI_SLLI
#undef VI_AND
#undef V_CASTI
#undef VI_CASTF
#undef VI_CVTF
#endif

#elif defined(PI_VMATH_TEMPLATE)
/* ---- the float32 math, written once for every width ---------------------- */
/* exp: x = n*ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2, so r is exact to
 * ~2^-32), exp(r) by the Cephes degree-7 minimax polynomial, and 2^n applied in
 * two halves (2^(n>>1) * 2^(n-(n>>1))) built by integer bitcast, so results in
 * the subnormal range and the overflow edge round once, correctly scaled.
 * x is clamped to [-104, 89] first: beyond, the result is 0 / inf anyway. */
/* The core of every float32 exp here: n = rint(x / ln 2) (returned through
 * *n_out) and exp(x - n ln 2) by the polynomial; the caller applies 2^n, as
 * its range needs (two halves here, one step in the attention softmax). */
PI_VTARGET static inline VF PI_VFN(exp_reduced_ps)(VF x, VF *n_out)
{
    VF n = V_RINT(V_MUL(x, V_SET1(1.44269504088896341f)));
    VF r = V_FNMA(n, V_SET1(0.693359375f), x);
    r = V_FNMA(n, V_SET1(-2.12194440e-4f), r);
    VF p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    *n_out = n;
    return V_ADD(V_FMA(p, V_MUL(r, r), r), V_SET1(1.0f));
}

PI_VTARGET static inline VF PI_VFN(exp_ps)(VF x)
{
    /* max/min return their second operand on NaN: NaN passes the clamp */
    x = V_MIN(V_SET1(89.0f), x);
    x = V_MAX(V_SET1(-104.0f), x);
    VF n;
    VF p = PI_VFN(exp_reduced_ps)(x, &n);
    VI ni = V_CVTI(n); /* NaN -> INT_MIN: garbage scale, but p is NaN already */
    VI n1 = VI_SRAI(ni, 1);
    VI n2 = VI_SUB(ni, n1);
    VF s1 = V_CASTI(VI_SLLI(VI_ADD(n1, VI_SET1(127)), 23));
    VF s2 = V_CASTI(VI_SLLI(VI_ADD(n2, VI_SET1(127)), 23));
    return V_MUL(V_MUL(p, s1), s2);
}

/* sigmoid: with e = exp(-|x|) in (0, 1], 1/(1+e) for x >= 0 and e/(1+e) for
 * x < 0 -- no overflow, full relative accuracy in the tail (sigmoid(-100) is
 * the right subnormal, not 0). */
PI_VTARGET static inline VF PI_VFN(sigmoid_ps)(VF x)
{
    const VF sign = V_SET1(-0.0f);
    VF e = PI_VFN(exp_ps)(V_OR(x, sign)); /* exp(-|x|); NaN stays NaN */
    VF s = V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), e));
    return V_SEL(V_LT(x, V_SET1(0.0f)), s, V_MUL(e, s));
}

/* tanh: odd polynomial x + x^3 P(x^2) for |x| < 0.625 (keeps the relative error
 * small near 0), else (1-e)/(1+e) with e = exp(-2|x|) in (0, 0.29] (no
 * cancellation), sign restored; tanh(+-inf) = +-1, NaN propagates. */
PI_VTARGET static inline VF PI_VFN(tanh_ps)(VF x)
{
    const VF sign = V_SET1(-0.0f);
    VF ax = V_ANDNOT(sign, x);
    VF e = PI_VFN(exp_ps)(V_MUL(ax, V_SET1(-2.0f)));
    VF big = V_DIV(V_SUB(V_SET1(1.0f), e), V_ADD(V_SET1(1.0f), e));
    big = V_OR(big, V_AND(x, sign));
    VF z = V_MUL(x, x);
    VF p = V_SET1(2.289737945e-03f);
    p = V_FMA(p, z, V_SET1(-8.340987580e-03f));
    p = V_FMA(p, z, V_SET1(2.176789806e-02f));
    p = V_FMA(p, z, V_SET1(-5.395911538e-02f));
    p = V_FMA(p, z, V_SET1(1.333330284e-01f));
    p = V_FMA(p, z, V_SET1(-3.333333317e-01f));
    VF small = V_FMA(V_MUL(p, z), x, x);
    return V_SEL(V_LT(ax, V_SET1(0.625f)), big, small);
}

/* erf(a) for 0 <= a < 1: a * P(a^2), degree-6 fit of erf(sqrt z)/sqrt z
 * (relative error of the fit 1.3e-9). */
PI_VTARGET static inline VF PI_VFN(erf_small_ps)(VF a)
{
    VF z = V_MUL(a, a);
    VF p = V_SET1(7.847259131e-05f);
    p = V_FMA(p, z, V_SET1(-8.008189324e-04f));
    p = V_FMA(p, z, V_SET1(5.188098890e-03f));
    p = V_FMA(p, z, V_SET1(-2.685369110e-02f));
    p = V_FMA(p, z, V_SET1(1.128358225e-01f));
    p = V_FMA(p, z, V_SET1(-3.761262557e-01f));
    p = V_FMA(p, z, V_SET1(1.128379166e+00f));
    return V_MUL(p, a);
}

/* erfc(a) for 0.5 <= a <= 10.5 (beyond, erfc underflows to 0 in float):
 * exp(-a^2) * R(t), t = 1/(1 + a/2), R a degree-9 fit of erfcx (relative
 * error 2.1e-9 over a in [0.5, 10.5]).  a^2 is passed as hi + lo (hi = fl(a*a),
 * lo its rounding error from an FMA) and exp(-hi)*(1-lo) used: without it the
 * rounding of a^2 alone costs ~2a^2 ulp at large a. */
PI_VTARGET static inline VF PI_VFN(erfc_tail_ps)(VF a, VF a2hi, VF a2lo)
{
    VF t = V_DIV(V_SET1(1.0f), V_FMA(a, V_SET1(0.5f), V_SET1(1.0f)));
    VF p = V_SET1(-7.472185016e-02f);
    p = V_FMA(p, t, V_SET1(3.523554505e-01f));
    p = V_FMA(p, t, V_SET1(-6.126543124e-01f));
    p = V_FMA(p, t, V_SET1(4.077874624e-01f));
    p = V_FMA(p, t, V_SET1(-1.088374938e-01f));
    p = V_FMA(p, t, V_SET1(2.356544047e-01f));
    p = V_FMA(p, t, V_SET1(2.347754924e-01f));
    p = V_FMA(p, t, V_SET1(2.836483027e-01f));
    p = V_FMA(p, t, V_SET1(2.819799336e-01f));
    p = V_FMA(p, t, V_SET1(3.704321036e-06f));
    VF e = PI_VFN(exp_ps)(V_SUB(V_SET1(0.0f), a2hi));
    e = V_FNMA(e, a2lo, e); /* e * (1 - lo) */
    return V_MUL(e, p);
}

/* erf: small-argument polynomial below 1, 1 - erfc above, sign restored. */
PI_VTARGET static inline VF PI_VFN(erf_ps)(VF x)
{
    const VF sign = V_SET1(-0.0f);
    VF ax = V_ANDNOT(sign, x);
    VF a = V_MIN(V_SET1(10.5f), ax); /* NaN passes */
    VF hi = V_MUL(a, a);
    VF lo = V_FMS(a, a, hi);
    VF big = V_SUB(V_SET1(1.0f), PI_VFN(erfc_tail_ps)(a, hi, lo));
    VF r = V_SEL(V_LT(ax, V_SET1(1.0f)), big, PI_VFN(erf_small_ps)(a));
    return V_OR(r, V_AND(x, sign));
}

/* gelu (erf form): 0.5 x (1 + erf(x/sqrt2)); the factor is
 * erfc(|x|/sqrt2) for x < -sqrt2/2, computed directly (no 1 - 0.99.. cancellation), with
 * (x/sqrt2)^2 = x^2/2 formed exactly from x.  gelu(-inf) = -0. */
PI_VTARGET static inline VF PI_VFN(gelu_ps)(VF x)
{
    const VF sign = V_SET1(-0.0f);
    VF xc = V_MAX(V_SET1(-15.0f), V_MIN(V_SET1(15.0f), x)); /* erf saturated beyond */
    VF a = V_ANDNOT(sign, V_MUL(xc, V_SET1(0.70710678118654752f)));
    VF xx = V_MUL(xc, xc);
    VF hi = V_MUL(xx, V_SET1(0.5f));
    VF lo = V_MUL(V_FMS(xc, xc, xx), V_SET1(0.5f));
    VF ec = PI_VFN(erfc_tail_ps)(a, hi, lo);
    VF es = PI_VFN(erf_small_ps)(a);
    VF one = V_SET1(1.0f);
    VF small = V_SEL(V_LT(x, V_SET1(0.0f)), V_ADD(one, es), V_SUB(one, es));
    VF big = V_SEL(V_LT(x, V_SET1(0.0f)), V_ADD(one, V_SUB(one, ec)), ec);
    /* below a = 0.5, 1 - erf(a) >= 0.48: no cancellation worth avoiding */
    VF phi2 = V_SEL(V_LT(a, V_SET1(0.5f)), big, small); /* 2*Phi(x) */
    VF xm = V_MAX(V_SET1(-3.40282347e38f), x); /* -inf * 0 would be NaN */
    return V_MUL(V_MUL(xm, V_SET1(0.5f)), phi2);
}

/* gelu_tanh: 0.5 x (1 + tanh(u)) == x * sigmoid(2u), 2u = x (c1 + c2 x^2).
 * 2u is formed in double-float (hi + lo: exact products by FMA, a TwoSum, the
 * constants split in two floats) and exp(-|2u|) is corrected by (1 - lo): a
 * plain float evaluation of 2u would cost |2u| ulp of relative error (150 ulp
 * at x = -9.4).  |x| is clamped to 20 (sigmoid saturated) so that x^2 stays
 * finite; gelu_tanh(-inf) = -0, gelu_tanh(inf) = inf. */
PI_VTARGET static inline VF PI_VFN(gelu_tanh_ps)(VF x)
{
    const VF c1h = V_SET1(1.595769167e+00f), c1l = V_SET1(-4.534068054e-08f);
    const VF c2h = V_SET1(7.135481387e-02f), c2l = V_SET1(2.398832466e-09f);
    VF xc = V_MAX(V_SET1(-20.0f), V_MIN(V_SET1(20.0f), x)); /* NaN passes */
    VF s = V_MUL(xc, xc);
    VF sl = V_FMS(xc, xc, s);                      /* x^2 = s + sl exactly */
    VF p = V_MUL(c2h, s);
    VF pl = V_FMS(c2h, s, p);                      /* c2h*s = p + pl exactly */
    pl = V_FMA(c2h, sl, V_FMA(c2l, s, pl));
    VF t = V_ADD(c1h, p);                          /* TwoSum(c1h, p) */
    VF bb = V_SUB(t, c1h);
    VF tl = V_ADD(V_SUB(c1h, V_SUB(t, bb)), V_SUB(p, bb));
    tl = V_ADD(tl, V_ADD(pl, c1l));
    VF uh = V_MUL(xc, t);
    VF ul = V_FMA(xc, tl, V_FMS(xc, t, uh));       /* 2u = uh + ul */
    const VF sign = V_SET1(-0.0f);
    /* e = exp(-|2u|) = exp(-|uh|) * (1 - sign(uh) ul) */
    VF e = PI_VFN(exp_ps)(V_OR(uh, sign));
    e = V_FNMA(e, V_XOR(ul, V_AND(uh, sign)), e);
    VF sg = V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), e));
    sg = V_SEL(V_LT(uh, V_SET1(0.0f)), sg, V_MUL(e, sg));
    VF xm = V_MAX(V_SET1(-3.40282347e38f), x);
    return V_MUL(xm, sg);
}

/* silu: x * sigmoid(x); silu(-inf) = -0. */
PI_VTARGET static inline VF PI_VFN(silu_ps)(VF x)
{
    VF xm = V_MAX(V_SET1(-3.40282347e38f), x);
    return V_MUL(xm, PI_VFN(sigmoid_ps)(x));
}

/* log: x = 2^k * m, m in [sqrt(1/2), sqrt2), log(m) = 2 atanh(f), f = (m-1)/(m+1),
 * odd series in f (|f| < 0.172); log(0) = -inf, log(<0) = NaN, log(inf) = inf,
 * subnormals are rescaled by 2^23 first.  <= 1 ulp. */
PI_VTARGET static inline VF PI_VFN(log_ps)(VF x)
{
    VM tiny = V_LT(x, V_SET1(1.17549435e-38f));
    VF xs = V_SEL(tiny, x, V_MUL(x, V_SET1(8388608.0f)));
    VF kadj = V_SEL(tiny, V_SET1(0.0f), V_SET1(-23.0f));
    VI bits = VI_CASTF(xs);
    /* subtract the bits of sqrt(1/2) so the mantissa lands in [sqrt(1/2), sqrt2) */
    VI t = VI_SUB(bits, VI_SET1(0x3f3504f3));
    VI k = VI_SRAI(t, 23);
    VI mb = VI_ADD(VI_AND(t, VI_SET1(0x007fffff)), VI_SET1(0x3f3504f3));
    VF m = V_CASTI(mb);
    VF kf = V_ADD(VI_CVTF(k), kadj);
    VF f = V_DIV(V_SUB(m, V_SET1(1.0f)), V_ADD(m, V_SET1(1.0f)));
    VF f2 = V_MUL(f, f);
    /* 2*atanh(f) = 2f + 2f^3/3 + 2f^5/5 + ...; |f| < 0.1716: 5 terms reach 2^-30 */
    VF p = V_SET1(2.0f / 11.0f);
    p = V_FMA(p, f2, V_SET1(2.0f / 9.0f));
    p = V_FMA(p, f2, V_SET1(2.0f / 7.0f));
    p = V_FMA(p, f2, V_SET1(2.0f / 5.0f));
    p = V_FMA(p, f2, V_SET1(2.0f / 3.0f));
    VF lm = V_FMA(V_MUL(p, f2), f, V_ADD(f, f));
    /* k*ln2 with ln2 split so k*ln2_hi is exact */
    VF r = V_FMA(kf, V_SET1(-2.12194440e-4f), lm);
    r = V_FMA(kf, V_SET1(0.693359375f), r);
    /* specials: 0 -> -inf, <0 or NaN -> NaN, +inf -> +inf */
    r = V_SEL(V_EQ(x, V_SET1(0.0f)), r, V_SET1(-INFINITY));
    r = V_SEL(V_EQ(x, V_SET1(INFINITY)), r, x);
    VM neg_or_nan = V_GE(x, V_SET1(0.0f)); /* false for x < 0 and NaN */
    return V_SEL(neg_or_nan, V_SET1(NAN), r);
}

PI_VTARGET static inline VF PI_VFN(act_ps)(VF x, int act)
{
    switch (act) {
    case PI_ACT_RELU: return V_MAX(V_SET1(0.0f), x); /* NaN passes */
    case PI_ACT_GELU: return PI_VFN(gelu_ps)(x);
    case PI_ACT_GELU_TANH: return PI_VFN(gelu_tanh_ps)(x);
    case PI_ACT_SILU: return PI_VFN(silu_ps)(x);
    case PI_ACT_SIGMOID: return PI_VFN(sigmoid_ps)(x);
    case PI_ACT_TANH: return PI_VFN(tanh_ps)(x);
    default: return x;
    }
}


#elif !defined(PI_VMATH_H)
#define PI_VMATH_H

#include <math.h>
#include "pi_internal.h"

#if PI_X86
#include <immintrin.h>
#endif

/* ---- scalar reference paths (portable ISA, tails, f64) -------------------- */

/* sigmoid without overflow and with full relative accuracy for x < 0. */
static inline double pi_sigmoid_f64(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x); /* NaN also lands here */
    return e / (1.0 + e);
}

static inline double pi_act_f64(double x, int act)
{
    switch (act) {
    case PI_ACT_RELU:
        return x < 0 ? 0.0 : x; /* NaN stays NaN */
    case PI_ACT_GELU:
        if (x == -INFINITY)
            return -0.0;
        /* for x < 0 use erfc so that the small result keeps its relative accuracy */
        return x >= 0 ? 0.5 * x * (1.0 + erf(x * 0.70710678118654752440))
                      : 0.5 * x * erfc(-x * 0.70710678118654752440);
    case PI_ACT_GELU_TANH: {
        if (x == -INFINITY)
            return -0.0;
        /* 0.5*(1+tanh(u)) == sigmoid(2u): no cancellation for x < 0 */
        double u2 = 1.5957691216057307117 * (x + 0.044715 * x * x * x);
        return x * pi_sigmoid_f64(u2);
    }
    case PI_ACT_SILU:
        return x == -INFINITY ? -0.0 : x * pi_sigmoid_f64(x);
    case PI_ACT_SIGMOID:
        return pi_sigmoid_f64(x);
    case PI_ACT_TANH:
        return tanh(x);
    default:
        return x;
    }
}

/* float: evaluate in double and round once -- essentially correctly rounded. */
static inline float pi_act_f32(float x, int act)
{
    if (act == PI_ACT_NONE)
        return x;
    if (act == PI_ACT_RELU)
        return x < 0 ? 0.0f : x;
    return (float)pi_act_f64((double)x, act);
}

#if PI_X86
/* ---- f64 vectors: lane by lane through libm (accuracy over speed) ------------ */

PI_TARGET_AVX2 static inline __m256d pi_act_pd_avx2(__m256d x, int act)
{
    if (act == PI_ACT_NONE)
        return x;
    if (act == PI_ACT_RELU) /* max(0, x) returns x when x is NaN */
        return _mm256_max_pd(_mm256_setzero_pd(), x);
    double t[4];
    _mm256_storeu_pd(t, x);
    for (int i = 0; i < 4; i++)
        t[i] = pi_act_f64(t[i], act);
    return _mm256_loadu_pd(t);
}

PI_TARGET_AVX512 static inline __m512d pi_act_pd_avx512(__m512d x, int act)
{
    if (act == PI_ACT_NONE)
        return x;
    if (act == PI_ACT_RELU)
        return _mm512_max_pd(_mm512_setzero_pd(), x);
    double t[8];
    _mm512_storeu_pd(t, x);
    for (int i = 0; i < 8; i++)
        t[i] = pi_act_f64(t[i], act);
    return _mm512_loadu_pd(t);
}


/* ---- per-width helpers the macro set refers to ------------------------------ */
PI_TARGET_AVX2 static inline __m256i pi_tailmask_avx2(int rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

PI_TARGET_AVX2 static inline float pi_hsum_ps_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

PI_TARGET_AVX2 static inline float pi_hmax_ps_avx2(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- f32 vectors: the template below, instantiated for both widths ---------- */
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_VMATH_TEMPLATE 1
#include "pi_vmath.h"
#undef PI_VMATH_TEMPLATE
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_VMATH_TEMPLATE 1
#include "pi_vmath.h"
#undef PI_VMATH_TEMPLATE
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif /* PI_X86 */

#endif /* PI_VMATH_H */
