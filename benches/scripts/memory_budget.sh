#!/usr/bin/env bash
# Does the engine keep its memory budget on data far larger than it?
#
#   benches/scripts/memory_budget.sh [ROWS] [BUDGET]      (defaults: 30000000 rows, 512MiB)
#
# Generates the standard synthetic dataset with ../shared/bench/gen_data.py (30 M rows:
# a 3.5 GB Parquet file, about 5.3 GB decoded, ten times the default budget), runs
# Parquet → select → Parquet (zstd) under `memory_budget`, and reports what /usr/bin/time -v
# measured: peak RSS against the budget (goal: at most budget + 25 %) and CPU time over wall
# time (goal: at least 1.8 on 2 cores). Needs python3 (with venv) and /usr/bin/time.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
rows=${1:-30000000}
budget=${2:-512MiB}
[ -f "$shared/bench/gen_data.py" ] || { echo "cannot find $shared/bench/gen_data.py (set MLPIPE_SHARED)" >&2; exit 2; }
cd "$root"
venv=${MLPIPE_BENCH_VENV:-target/bench-venv}
data=${MLPIPE_BENCH_DATA:-target/bench-data}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$shared/bench/requirements.txt"
fi
input=$(realpath -m "$data/tab_${rows}.parquet")
[ -f "$input" ] || "$venv/bin/python" "$shared/bench/gen_data.py" "$rows" --formats parquet --out "$data"
cargo build --release --quiet
output=target/bench-budget-out.parquet
pipeline=target/bench-budget.toml
cat > "$pipeline" <<TOML
[pipeline]
memory_budget = "$budget"

[source]
type = "parquet"
path = "$input"

[[transform]]
type = "select"
columns = ["*"]

[sink]
type = "parquet"
path = "$root/$output"
overwrite = true
TOML
log=target/bench-budget.time
# The previous run's output goes first: renaming the new file over it would make the
# kernel free its 3.4 GB of blocks during the run's final directory sync (0.5 s measured
# on ext4, both cores idle), which is not the pipeline's work.
rm -f "$output"
/usr/bin/time -v target/release/mlpipe-host run "$pipeline" --quiet --metrics-json target/bench-budget.json 2> "$log" \
    || { cat "$log" >&2; echo "the run failed (its output: $output)" >&2; exit 1; }
"$venv/bin/python" - "$log" "$budget" target/bench-budget.json <<'PY'
import json, re, sys
log, budget, report = open(sys.argv[1]).read(), sys.argv[2], json.load(open(sys.argv[3]))
def field(name):
    return re.search(re.escape(name) + r":\s*(.+)", log).group(1).strip()
units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
number, unit = re.match(r"([\d.]+)\s*(\w+)?", budget).groups()
budget_bytes = float(number) * units.get(unit or "", 1)
rss = int(field("Maximum resident set size (kbytes)")) * 1024
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
wall_text = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
wall = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall_text.split(":"))))
print(f"rows written        {report['rows_written']}")
print(f"decoded bytes       {report['stages'][0]['bytes'] / 2**30:.2f} GiB through a {budget} budget")
print(f"peak RSS            {rss / 2**20:.0f} MiB = {rss / budget_bytes:.2f} x budget (goal <= 1.25)")
print(f"peak in flight      {report['memory_peak_bytes'] / 2**20:.0f} MiB (engine accounting)")
print(f"wall / CPU          {wall:.1f} s / {cpu:.1f} s = CPU/wall {cpu / wall:.2f} (goal >= 1.8)")
print(f"bottleneck          {report['bottleneck']}")
PY
