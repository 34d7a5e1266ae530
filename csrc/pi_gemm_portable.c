/* Portable C instances of the GEMM micro-kernel template: "vectors" of one
 * element, so the same text as the AVX2/AVX-512 kernels runs on any CPU.
 * Every list entry with isa portable in pi_gemm_ukernels.h becomes one kernel. */
#include "pi_internal.h"
#include "pi_gemm_ukernels.h"
#include "pi_vmath.h"

#define UK_TARGET
#define UK_MAXNV 8

#define UK_SUFFIX portable_f32
#define UK_T float
#define UK_V float
#define UK_VL 1
#define UK_LOAD(p) (*(p))
#define UK_STORE(p, v) (*(p) = (v))
#define UK_SET1(x) (x)
#define UK_ZERO() 0.0f
#define UK_ADD(x, y) ((x) + (y))
#define UK_MUL(x, y) ((x) * (y))
#define UK_FMA(x, y, z) ((x) * (y) + (z))
#define UK_ACT(v, act) pi_act_f32((v), (act))
#define UK_ALPHA alpha_f
#include "pi_gemm_ukernel.inc"

#define UK_SUFFIX portable_f64
#define UK_T double
#define UK_V double
#define UK_VL 1
#define UK_LOAD(p) (*(p))
#define UK_STORE(p, v) (*(p) = (v))
#define UK_SET1(x) (x)
#define UK_ZERO() 0.0
#define UK_ADD(x, y) ((x) + (y))
#define UK_MUL(x, y) ((x) * (y))
#define UK_FMA(x, y, z) ((x) * (y) + (z))
#define UK_ACT(v, act) pi_act_f64((v), (act))
#define UK_ALPHA alpha_d
#include "pi_gemm_ukernel.inc"

#define PI_GEMM_DEFINE_portable_f32(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, portable_f32, , float, 1, MR, NR)
#define PI_GEMM_DEFINE_portable_f64(name, MR, NR) \
    PI_GEMM_UK_WRAP(name, portable_f64, , double, 1, MR, NR)
#define PI_GEMM_INSTANTIATE
#include "pi_gemm_ukernels.h"
PI_GEMM_INSTANTIATE_ALL()
