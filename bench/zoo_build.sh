#!/usr/bin/env bash
# Timed zoo builds. Run from the repository root:
#   bench/zoo_build.sh small [OUT]  shapes32 10 clean + 10 backdoored (the "under 5 minutes on 2 cores" check); OUT=/tmp/z
#   bench/zoo_build.sh full  [OUT]  the benchmark zoo: digits16 60+60 (seed 1) and shapes32 50+50 (seed 2), 220 models,
#                                   OUT=/work/bench-zoo; touches OUT/DONE when both finish.
# The full build runs the two families side by side with one torch thread each (2 threads in all), in two stages
# (a quarter first, then the rest), so that a usable zoo of both families exists early; re-running resumes.
# Prints wall/CPU seconds (bash's `time`) and a manifest summary (bench/zoo_summary.py).
set -euo pipefail
PY=${PY:-python}
mode=${1:-small}
build() { "$PY" -m scanner -q zoo build "$@"; }
case "$mode" in
small)
    out=${2:-/tmp/z}
    time build --family shapes32 --clean 10 --backdoored 10 --out "$out" --threads "${THREADS:-2}"
    ;;
full)
    out=${2:-/work/bench-zoo}
    for stage in "15 13" "60 50"; do
        set -- $stage
        echo "stage: digits16 $1+$1, shapes32 $2+$2 ($(date -u +%T))"
        time {
            build --family digits16 --clean "$1" --backdoored "$1" --out "$out" --seed 1 --threads 1 &
            digits=$!
            build --family shapes32 --clean "$2" --backdoored "$2" --out "$out" --seed 2 --threads 1 &
            shapes=$!
            failed=0
            wait "$digits" || failed=1
            wait "$shapes" || failed=1
            test "$failed" = 0
        }
    done
    touch "$out/DONE"
    ;;
*)
    echo "usage: $0 small|full [OUT]" >&2
    exit 2
    ;;
esac
"$PY" -m bench.zoo_summary "$out"
