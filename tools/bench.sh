#!/bin/sh
# make bench: generates random-weight models of the DeepSeek-R1-Distill-Qwen-1.5B
# shape (Q8_0, Q4_K_M, F16) into bench-models/ when absent, then runs
# `ponder bench` on each.  Everything goes to stdout.
#
# Environment:
#   BENCH_FAST=1   -p 64 -n 16 -r 1, on the Q8_0 model only
#   BENCH_DIR      where the models live (default bench-models)
#   BENCH_ARGS     extra arguments for ponder bench (e.g. "-t 2" or "--json")
#   PONDER         the binary (default ./ponder)
#   GENMODEL       the generator (default $BUILD/tools/genmodel, BUILD default build)
# Exit status: 0, or 1 when a model could not be made or a bench run failed.

exec 2>&1

dir=${BENCH_DIR:-bench-models}
ponder=${PONDER:-./ponder}
genmodel=${GENMODEL:-${BUILD:-build}/tools/genmodel}

if [ "${BENCH_FAST:-0}" != 0 ]; then
    types="q8_0"
    set -- -p 64 -n 16 -r 1
else
    types="q8_0 q4_k_m f16"
    set -- -p 512 -n 128 -r 3
fi

status=0
echo "== ponder bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1
if command -v git >/dev/null 2>&1 && git rev-parse --short HEAD >/dev/null 2>&1; then
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
fi

mkdir -p "$dir" || exit 1
for t in $types; do
    f="$dir/r1-qwen-1.5b-$t.gguf"
    [ -f "$f" ] && continue
    if [ ! -x "$genmodel" ]; then
        echo "bench: $genmodel is missing (run make tools), cannot make $f"
        status=1
        continue
    fi
    echo "== generating $f"
    if ! "$genmodel" --preset r1-qwen-1.5b --type "$t" --seed 1 -o "$f"; then
        echo "bench: could not generate $f"
        status=1
    fi
done

if [ ! -x "$ponder" ]; then
    echo "bench: $ponder is missing (run make); models are in $dir/"
    exit 1
fi
if ! "$ponder" bench --help >/dev/null 2>&1; then
    echo "bench: '$ponder bench' does not exist yet; models are in $dir/"
    exit "$status"
fi

for t in $types; do
    f="$dir/r1-qwen-1.5b-$t.gguf"
    [ -f "$f" ] || continue
    echo "== $ponder bench -m $f $* ${BENCH_ARGS:-}"
    # BENCH_ARGS is split into words on purpose
    # shellcheck disable=SC2086
    if ! "$ponder" bench -m "$f" "$@" ${BENCH_ARGS:-}; then
        echo "bench: ponder bench failed on $f"
        status=1
    fi
done
exit "$status"
