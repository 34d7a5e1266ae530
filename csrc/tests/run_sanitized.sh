#!/usr/bin/env bash
# Build every csrc/tests/test_*.c against all of csrc/*.c (placeholders
# excluded) under AddressSanitizer + UBSan, run each, and fail on any failure.
# Usage: csrc/tests/run_sanitized.sh   (from anywhere; needs gcc with libasan)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
csrc="$(dirname "$here")"
cc="${CC:-gcc}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

srcs=()
for f in "$csrc"/*.c; do
    case "$(basename "$f")" in _placeholder*) continue ;; esac
    srcs+=("$f")
done

flags=(-O1 -g -std=c11 -fsanitize=address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer -fopenmp -DPI_DEBUG=1 -I"$csrc")
# OpenMP's runtime keeps thread pools alive at exit: not a leak of ours.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
# Kernels split even the tests' small calls over their threads (pi_threads_for would keep them on one).
export PYINFER_FORK_US="${PYINFER_FORK_US:-0}"

status=0
shopt -s nullglob
tests=("$here"/test_*.c)
if [ ${#tests[@]} -eq 0 ]; then
    echo "no csrc/tests/test_*.c found" >&2
    exit 1
fi
# Objects once, then one link per test (the kernels are shared by all tests).
# Objects are cached by a hash of the source, every header/template and the
# flags, so a rerun after editing one file recompiles only what changed
# (the AVX-512 instances alone take ~20 s under ASan).
cache="${PI_SANITIZE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyinfer-sanitize}"
mkdir -p "$cache" 2>/dev/null || cache="$out"
hdrs="$(cat "$csrc"/*.h "$csrc"/*.inc 2>/dev/null | sha256sum | cut -c1-16)"
objs=()
for f in "${srcs[@]}"; do
    key="$( (cat "$f"; echo "$hdrs ${flags[*]} $("$cc" --version | head -1)") | sha256sum | cut -c1-24)"
    o="$cache/$(basename "$f" .c)-$key.o"
    objs+=("$o")
    [ -f "$o" ] && continue
    ("$cc" "${flags[@]}" -c "$f" -o "$o.tmp.$$" && mv "$o.tmp.$$" "$o") &
    # two compiles at a time
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
for o in "${objs[@]}"; do
    [ -f "$o" ] || { echo "FAILED to compile $(basename "$o" .o).c" >&2; exit 1; }
done
for t in "${tests[@]}"; do
    name="$(basename "$t" .c)"
    if ! "$cc" "${flags[@]}" "$t" "${objs[@]}" -lm -o "$out/$name"; then
        echo "FAILED to build $name" >&2
        status=1
        continue
    fi
    echo "== $name"
    if ! "$out/$name"; then
        echo "FAILED $name" >&2
        status=1
    fi
done
exit $status
