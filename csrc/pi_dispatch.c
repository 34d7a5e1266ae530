/* Runtime ISA dispatch and thread count: the one place that asks the CPU
 * what it can do (STYLE.md 8).  Kernel families read pi_current_isa. */
#include <omp.h>
#include <stdlib.h>
#include "pi_internal.h"

int pi_current_isa = PI_ISA_PORTABLE;
int pi_num_threads = 1;
double pi_fork_ns = PI_FORK_NS;

static int detect_isa(void)
{
#if PI_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("fma"))
        return PI_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return PI_ISA_AVX2;
#endif
    return PI_ISA_PORTABLE;
}

static int detected_isa = PI_ISA_PORTABLE;

__attribute__((constructor)) static void pi_init(void)
{
    detected_isa = detect_isa();
    pi_current_isa = detected_isa;
    pi_num_threads = omp_get_max_threads();
    if (pi_num_threads < 1)
        pi_num_threads = 1;
    /* Another machine's fork cost (pi_internal.h), in microseconds. */
    const char *fork_us = getenv("PYINFER_FORK_US");
    if (fork_us && *fork_us) {
        char *end;
        double us = strtod(fork_us, &end);
        if (*end == '\0' && us >= 0 && us < 1e6)
            pi_fork_ns = us * 1e3;
    }
}

PI_EXPORT int pi_isa(void) { return pi_current_isa; }
PI_EXPORT int pi_isa_detected(void) { return detected_isa; }

PI_EXPORT const char *pi_isa_name(int isa)
{
    switch (isa) {
    case PI_ISA_AVX512: return "avx512f";
    case PI_ISA_AVX2: return "avx2";
    case PI_ISA_PORTABLE: return "portable";
    default: return "unknown";
    }
}

PI_EXPORT int pi_set_isa(int isa)
{
    if (isa < PI_ISA_PORTABLE || isa > detected_isa)
        return PI_ERR_UNSUPPORTED;
    pi_current_isa = isa;
    return PI_OK;
}

PI_EXPORT void pi_set_num_threads(int n)
{
    pi_num_threads = n < 1 ? 1 : n;
}

PI_EXPORT int pi_get_num_threads(void) { return pi_num_threads; }

/* The fork cost pi_threads_for weighs work against (pi_internal.h). */
PI_EXPORT void pi_set_fork_ns(double ns) { pi_fork_ns = ns > 0 ? ns : 0; }
PI_EXPORT double pi_get_fork_ns(void) { return pi_fork_ns; }

PI_EXPORT const char *pi_status_string(int status)
{
    switch (status) {
    case PI_OK: return "ok";
    case PI_ERR_ARG: return "invalid argument";
    case PI_ERR_UNSUPPORTED: return "unsupported on this CPU or for these arguments";
    case PI_ERR_WORKSPACE: return "workspace too small";
    default: return "unknown status";
    }
}
