/* Standalone test of the thread rule pi_threads_for (pi_internal.h) and its
 * knob pi_set_fork_ns / pi_get_fork_ns (no Python).
 *
 * A call gets t threads when its single-thread time is at least t fork costs,
 * never more than the budget or its units, never fewer than one; a fork cost
 * of 0 gives every call the whole budget (bounded by its units).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdio.h>

#include "pi_internal.h"

void pi_set_fork_ns(double ns);
double pi_get_fork_ns(void);

static int passed, failed;

static void expect(int got, int want, double ns, double units, const char *what)
{
    if (got == want) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s: pi_threads_for(%g ns, %g units) with %d threads, fork %g ns: %d, want %d\n",
           what, ns, units, pi_num_threads, pi_fork_ns, got, want);
}

int main(void)
{
    const double before = pi_get_fork_ns();
    pi_set_fork_ns(20000.0);
    expect(pi_get_fork_ns() == 20000.0, 1, 0, 0, "set/get");

    pi_set_num_threads(2);
    expect(pi_threads_for(0.0, 100), 1, 0.0, 100, "no work");
    expect(pi_threads_for(39999.0, 100), 1, 39999.0, 100, "just under 2 forks");
    expect(pi_threads_for(40000.0, 100), 2, 40000.0, 100, "2 forks");
    expect(pi_threads_for(1e9, 100), 2, 1e9, 100, "budget bounds");
    expect(pi_threads_for(1e9, 1), 1, 1e9, 1, "one unit");
    expect(pi_threads_for(1e9, 0), 1, 1e9, 0, "no unit still one thread");

    pi_set_num_threads(8);
    expect(pi_threads_for(1e5, 100), 5, 1e5, 100, "5 forks of work on 8");
    expect(pi_threads_for(1e9, 3), 3, 1e9, 3, "3 units on 8");
    expect(pi_threads_for(1e9, 1e12), 8, 1e9, 1e12, "huge units");

    pi_set_num_threads(1);
    expect(pi_threads_for(1e9, 100), 1, 1e9, 100, "budget 1");

    pi_set_fork_ns(0.0);
    pi_set_num_threads(2);
    expect(pi_threads_for(0.0, 100), 2, 0.0, 100, "fork 0: whole budget");
    expect(pi_threads_for(10.0, 1), 1, 10.0, 1, "fork 0: one unit");
    pi_set_fork_ns(-5.0);
    expect(pi_get_fork_ns() == 0.0, 1, 0, 0, "negative clamps to 0");
    pi_set_fork_ns(NAN);
    expect(pi_get_fork_ns() == 0.0, 1, 0, 0, "NaN clamps to 0");

    pi_set_fork_ns(before);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
