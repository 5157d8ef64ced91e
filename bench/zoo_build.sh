#!/usr/bin/env bash
# Timed zoo builds. Run from the repository root:
#   bench/zoo_build.sh small [OUT]  shapes32 10 clean + 10 backdoored (the "under 5 minutes on 2 cores" check); OUT=/tmp/z
#   bench/zoo_build.sh full  [OUT]  the benchmark zoo, 220 models: digits16 60+60 (seed 1), shapes32 35+35 (seed 2)
#                                   and 15+15 (seed 3); OUT=/work/bench-zoo; touches OUT/DONE when all finish.
# The full build runs two processes side by side with one torch thread each (2 threads in all): shapes32 seed 2 in one,
# digits16 then shapes32 seed 3 in the other (a shapes32 model costs ~6x a digits16 one, so this balances the cores).
# Each build first makes a quarter, then the rest, so that a usable zoo of both families exists early; re-running
# resumes (a model is skipped when the manifest lists it and its file exists).
# A model that misses the bar after every retry is left out; DONE is still touched when both builds end, and the
# script then exits 1.
# Prints wall/CPU seconds (bash's `time`) and a manifest summary (bench/zoo_summary.py).
set -euo pipefail
PY=${PY:-python}
mode=${1:-small}
build() { "$PY" -m scanner zoo build "$@"; }
case "$mode" in
-h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
small)
    out=${2:-/tmp/z}
    time build --family shapes32 --clean 10 --backdoored 10 --out "$out" --threads "${THREADS:-2}"
    ;;
full)
    out=${2:-/work/bench-zoo}
    # A stage with a left-out model still goes on to the next stage; the family's status says it happened.
    family() {
        local rc=0
        for n in $3 $4; do
            build --family "$1" --clean "$n" --backdoored "$n" --out "$out" --seed "$2" --threads 1 || rc=$?
        done
        return "$rc"
    }
    echo "start $(date -u +%T)"
    time {
        (
            rc=0
            family digits16 1 15 60 || rc=$?
            family shapes32 3 4 15 || rc=$?
            exit "$rc"
        ) &
        first=$!
        family shapes32 2 13 35 &
        second=$!
        failed=0
        wait "$first" || failed=1
        wait "$second" || failed=1
    }
    echo "end $(date -u +%T)"
    # Every build ran to its end: the zoo is as complete as it will get (the manifest lists what is there).
    touch "$out/DONE"
    "$PY" -m bench.zoo_summary "$out"
    exit "$failed"
    ;;
*)
    echo "usage: $0 small|full [OUT]" >&2
    exit 2
    ;;
esac
"$PY" -m bench.zoo_summary "$out"
