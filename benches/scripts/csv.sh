#!/usr/bin/env bash
# How fast does the csv source read, and CSV → Parquet convert, against the peers?
#
#   benches/scripts/csv.sh [RUNS] [ROWS]          (defaults: 3 runs, 5000000 rows)
#
# Environment: CSV=file (default target/bench-data/tab_ROWS.csv, generated with
# ../shared/bench/gen_data.py), PYTHON=interpreter with polars, pyarrow and duckdb (default
# target/bench-venv, made from ../shared/bench/requirements.txt), MLPIPE_SHARED.
#
# Every command runs as its own process (start-up included), input in the page cache, one
# warm-up round, then RUNS rounds that take the commands in turn, so that the machine's
# noise hits them alike. Reported: median wall and CPU (user + system) seconds, peak RSS,
# and each peer's wall time over mlpipe's (> 1: mlpipe is faster). Peers:
#   read:     polars read_csv, pyarrow read_csv, arrow-rs's CSV reader on the same threads
#             (../shared/bench/limits csv_decode, byte ranges cut at newlines)
#   convert:  polars (read_csv + write_parquet, and scan_csv + sink_parquet), pyarrow
#             (read_csv + write_table), DuckDB (COPY ... TO parquet), all zstd
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
runs=${1:-3}
rows=${2:-5000000}
[ -f "$shared/bench/gen_data.py" ] || { echo "cannot find $shared/bench/gen_data.py (set MLPIPE_SHARED)" >&2; exit 2; }
cd "$root"
python=${PYTHON:-target/bench-venv/bin/python}
if [ ! -x "$python" ]; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -q -r "$shared/bench/requirements.txt"
    python=target/bench-venv/bin/python
fi
csv=${CSV:-target/bench-data/tab_${rows}.csv}
[ -f "$csv" ] || "$python" "$shared/bench/gen_data.py" "$rows" --formats csv --out "$(dirname "$csv")"
csv=$(cd "$(dirname "$csv")" && pwd)/$(basename "$csv")
cargo build --release --quiet -p mlpipe-host -p mlpipe-plugin-csv -p mlpipe-plugin-util -p mlpipe-plugin-parquet
[ -x target/limits/bin/csv_decode ] || LIMITS_TARGET=$root/target/limits "$shared/bench/limits/build.sh"
threads=$(nproc)
out=$root/target/bench-csv
mkdir -p "$out"
cat > "$out/discard.toml" <<TOML
[source]
type = "csv"
path = "$csv"

[sink]
type = "discard"
TOML
cat > "$out/parquet.toml" <<TOML
[source]
type = "csv"
path = "$csv"

[sink]
type = "parquet"
path = "$out/mlpipe.parquet"
overwrite = true
TOML
export POLARS_MAX_THREADS=$threads
"$python" - "$runs" "$threads" "$csv" "$out" "$python" <<'PY'
import os, statistics, subprocess, sys, time
runs, threads, csv, out, python = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
host = "target/release/mlpipe-host"
def py(code):
    return [python, "-c", code]
read = [
    ("mlpipe csv -> discard", [host, "run", f"{out}/discard.toml", "--quiet"]),
    ("polars read_csv", py(f"import polars as pl; pl.read_csv({csv!r})")),
    ("pyarrow read_csv", py(f"import pyarrow.csv as c; c.read_csv({csv!r})")),
    (f"arrow-rs csv_decode, {threads} threads", ["target/limits/bin/csv_decode", csv, "1", threads]),
]
convert = [
    ("mlpipe csv -> parquet", [host, "run", f"{out}/parquet.toml", "--quiet"]),
    ("polars read_csv + write_parquet", py(f"import polars as pl; pl.read_csv({csv!r}).write_parquet({out + '/polars.parquet'!r}, compression='zstd')")),
    ("polars scan_csv + sink_parquet", py(f"import polars as pl; pl.scan_csv({csv!r}).sink_parquet({out + '/polars-stream.parquet'!r}, compression='zstd')")),
    ("pyarrow read_csv + write_table", py(f"import pyarrow.csv as c, pyarrow.parquet as pq; pq.write_table(c.read_csv({csv!r}), {out + '/pyarrow.parquet'!r}, compression='zstd')")),
    ("duckdb COPY to parquet", py(f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_csv({csv!r})) TO '{out}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)\")")),
]

def measure(command):
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    error = child.stderr.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"{command} failed ({status}): {error}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024

def bench(title, commands):
    results = {name: [] for name, _ in commands}
    for round in range(runs + 1):
        for name, command in commands:
            figures = measure(command)
            if round > 0:
                results[name].append(figures)
    print(f"\n{title}: {os.path.basename(csv)} ({os.path.getsize(csv) / 1e6:.0f} MB), {threads} cores, median of {runs}")
    print("| command | wall s | CPU s | peak RSS MiB | wall / mlpipe's |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(w for w, _, _ in results[commands[0][0]])
    for name, _ in commands:
        wall = statistics.median(w for w, _, _ in results[name])
        cpu = statistics.median(c for _, c, _ in results[name])
        rss = statistics.median(r for _, _, r in results[name])
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {wall / base:.2f} |")

bench("CSV read", read)
bench("CSV -> Parquet (zstd)", convert)
PY
