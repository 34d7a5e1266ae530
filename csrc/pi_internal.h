/* Shared by the kernel sources, never by hosts: debug asserts, the current
 * ISA and thread count, and the target attributes that let one portable build
 * carry AVX2 and AVX-512 code (chosen at run time, never -march=native). */
#ifndef PI_INTERNAL_H
#define PI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "pyinfer.h"

#ifdef PI_DEBUG
#include <assert.h>
#define PI_ASSERT(cond) assert(cond)
#else
#define PI_ASSERT(cond) ((void)0)
#endif

#define PI_EXPORT __attribute__((visibility("default")))

#if defined(__x86_64__) || defined(__i386__)
#define PI_X86 1
#define PI_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PI_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define PI_X86 0
#define PI_TARGET_AVX2
#define PI_TARGET_AVX512
#endif

/* The ISA kernels dispatch on; set at load from cpuid, lowered by pi_set_isa. */
extern int pi_current_isa;
/* Threads for OpenMP regions: one global so every host thread agrees. */
extern int pi_num_threads;

#define PI_PTR_ADD(p, bytes) ((void *)((char *)(p) + (bytes)))
#define PI_CPTR_ADD(p, bytes) ((const void *)((const char *)(p) + (bytes)))

#endif
