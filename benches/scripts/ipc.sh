#!/usr/bin/env bash
# Arrow IPC file → discard: is the zero-copy `ipc` source bounded by page-cache read speed?
#
#   benches/scripts/ipc.sh [FILE] [RUNS]      (defaults: the 5 M-row dataset, 7 runs)
#
# FILE is an Arrow IPC file; without it the standard synthetic dataset is generated with
# ../shared/bench/gen_data.py (5 M rows, 893 MB, 5 record batches). Each round runs, on the
# same warm page cache and interleaved so that they share the machine's noise:
#   - dd:      read(2) of the whole file into a 1 MiB buffer (the page-cache read speed);
#   - mlpipe:  `mlpipe-host run` of source `ipc` → sink `discard` (batch_rows 65536): the
#              whole process, and the run alone (`elapsed_seconds` of --metrics-json);
#   - pyarrow: `pa.ipc.open_file(pa.memory_map(FILE)).read_all()` (zero copy as well);
#   - polars:  `pl.read_ipc(FILE)` (memory-mapped by polars itself).
# Prints the median of each and the ratios (file bytes / seconds; "x dd" > 1 is faster than
# reading the bytes). Needs python3 (with venv); the peers come from
# ../shared/bench/requirements.txt. Set BENCH_PYTHON to use another interpreter.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
runs=${2:-7}
cd "$root"
python=${BENCH_PYTHON:-target/bench-venv/bin/python}
if [ ! -x "$python" ]; then
    [ -f "$shared/bench/requirements.txt" ] || { echo "cannot find $shared/bench (set MLPIPE_SHARED)" >&2; exit 2; }
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -q -r "$shared/bench/requirements.txt"
    python=target/bench-venv/bin/python
fi
input=${1:-target/bench-data/tab_5000000.arrow}
if [ ! -f "$input" ]; then
    [ $# -ge 1 ] && { echo "no such file: $input" >&2; exit 2; }
    "$python" "$shared/bench/gen_data.py" 5000000 --formats arrow --out target/bench-data
fi
input=$(cd "$(dirname "$input")" && pwd)/$(basename "$input")
cargo build --release --quiet -p mlpipe-host -p mlpipe-plugin-ipc -p mlpipe-plugin-util
pipeline=target/bench-ipc.toml
cat > "$pipeline" <<TOML
[pipeline]
batch_rows = 65536

[source]
type = "ipc"
path = "$input"

[sink]
type = "discard"
TOML
"$python" - "$input" "$pipeline" "$runs" <<'PY'
import json, os, statistics, subprocess, sys, time
path, pipeline, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(path)
import pyarrow as pa, polars as pl

def dd():
    start = time.perf_counter()
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True, capture_output=True)
    return time.perf_counter() - start, None

def mlpipe():
    report = "target/bench-ipc.json"
    start = time.perf_counter()
    subprocess.run(["target/release/mlpipe-host", "run", pipeline, "--quiet", "--metrics-json", report], check=True)
    wall = time.perf_counter() - start
    with open(report) as f:
        done = json.load(f)
    assert done["rows_written"] > 0
    return wall, done["elapsed_seconds"]

def pyarrow():
    start = time.perf_counter()
    table = pa.ipc.open_file(pa.memory_map(path)).read_all()
    assert table.num_rows > 0
    return time.perf_counter() - start, None

def polars():
    start = time.perf_counter()
    frame = pl.read_ipc(path)
    assert frame.height > 0
    return time.perf_counter() - start, None

measures = {"dd": dd, "mlpipe": mlpipe, "pyarrow": pyarrow, "polars": polars}
for measure in measures.values():  # warm-up: the file in the page cache, code paged in
    measure()
times = {name: [] for name in measures}
runs_only = []
for _ in range(runs):
    for name, measure in measures.items():
        wall, run = measure()
        times[name].append(wall)
        if run is not None:
            runs_only.append(run)
median = {name: statistics.median(values) for name, values in times.items()}
median["mlpipe (run only)"] = statistics.median(runs_only)
print(f"{path}: {size / 1e6:.0f} MB, median of {runs} interleaved runs, page cache warm")
print(f"{'':<20}{'seconds':>10}{'GB/s':>10}{'x dd':>10}")
for name, seconds in median.items():
    print(f"{name:<20}{seconds:>10.4f}{size / seconds / 1e9:>10.1f}{median['dd'] / seconds:>10.2f}")
print(f"mlpipe (run only) vs pyarrow read_all: {median['pyarrow'] / median['mlpipe (run only)']:.2f}x, "
      f"vs polars read_ipc: {median['polars'] / median['mlpipe (run only)']:.2f}x")
PY
