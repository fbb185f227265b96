#!/usr/bin/env bash
# What the adaptive worker pool does: the same source-bound pipelines with
# `adaptive_workers = true` (the watcher parks a transform worker while workers mostly wait
# for the source, so the source may use its core) and `false` (every worker stays), in the
# same run, alternating, RUNS times each.
#
#   benches/scripts/adaptive_pool.sh [ROWS] [RUNS]      (defaults: 5000000 rows, 3 runs)
#
# Pipelines: the tabular-prep transforms (fitted once, applied with --stats) from CSV and
# from Parquet into the `discard` sink, so the source is the bottleneck. Prints, per
# pipeline and setting, the median wall and CPU seconds (/usr/bin/time) and the
# worker-seconds the pool kept parked (`parked_worker_seconds` of --metrics-json).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
rows=${1:-5000000}
runs=${2:-3}
[ -f "$shared/bench/gen_data.py" ] || { echo "cannot find $shared/bench/gen_data.py (set MLPIPE_SHARED)" >&2; exit 2; }
cd "$root"
venv=$(realpath -m "${MLPIPE_BENCH_VENV:-target/bench-venv}")
data=$(realpath -m "${MLPIPE_BENCH_DATA:-target/bench-data}")
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$shared/bench/requirements.txt"
fi
for format in csv parquet; do
    [ -f "$data/tab_${rows}.${format}" ] \
        || "$venv/bin/python" "$shared/bench/gen_data.py" "$rows" --formats "$format" --out "$data"
done
cargo build --release --quiet
host=$root/target/release/mlpipe-host
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=$work/results.tsv
for format in csv parquet; do
    input=$data/tab_${rows}.${format}
    pipeline=$work/$format.toml
    sed -e "s|^type = \"parquet\"\$|type = \"$format\"|" examples/tabular-prep.toml \
        | sed -n '1,/^\[sink\]/p' > "$pipeline"
    printf 'type = "discard"\n' >> "$pipeline"
    "$host" fit "$pipeline" --quiet --set source.path="$input" -o "$work/$format.stats.json"
    for run in $(seq "$runs"); do
        for adaptive in true false; do
            /usr/bin/time -f "%e %U %S" -o "$work/time" "$host" run "$pipeline" --quiet \
                --stats "$work/$format.stats.json" --set source.path="$input" \
                --set pipeline.adaptive_workers=$adaptive --metrics-json "$work/metrics.json"
            read -r wall user sys < "$work/time"
            parked=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['parked_worker_seconds'])" "$work/metrics.json")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$format" "$adaptive" "$wall" "$user" "$parked" "$sys" >> "$results"
        done
    done
done
"$venv/bin/python" - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().split("\n") if line]
print("| input | adaptive_workers | median wall s | median CPU s | parked worker-s |")
print("|---|---|---:|---:|---:|")
walls = {}
for fmt in dict.fromkeys(r[0] for r in rows):
    for adaptive in ("true", "false"):
        mine = [r for r in rows if r[0] == fmt and r[1] == adaptive]
        med = lambda values: statistics.median(values)
        wall = med(float(r[2]) for r in mine)
        cpu = med(float(r[3]) + float(r[5]) for r in mine)
        walls[fmt, adaptive] = wall
        print(f"| {fmt} | {adaptive} | {wall:.2f} | {cpu:.2f} | {med(float(r[4]) for r in mine):.2f} |")
for fmt in dict.fromkeys(r[0] for r in rows):
    print(f"{fmt}: wall with the adaptive pool / without = {walls[fmt, 'true'] / walls[fmt, 'false']:.3f}")
PY
