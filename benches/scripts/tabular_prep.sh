#!/usr/bin/env bash
# The "tabular-prep" job of ../shared/bench/README.md: mlpipe (examples/tabular-prep.toml)
# against polars, pyarrow, DuckDB and pandas + scikit-learn, in the same run.
#
#   benches/scripts/tabular_prep.sh [ROWS] [FORMATS] [RUNS]
#       defaults: 5000000 rows, formats parquet,csv, 3 timed runs after 1 warm-up
#
# For each input format, ../shared/bench/run_bench.py times every peer and mlpipe as whole
# processes (median wall and CPU seconds, peak RSS), checks every output against the first
# peer's with check_output.py, and prints its Markdown table; this script then prints, per
# format, each peer's time over mlpipe's (above 1: mlpipe is faster) and mlpipe's CPU and
# peak RSS. The goal (issue 5): at least 1.5x the fastest peer on Parquet, faster on CSV,
# peak RSS within the pipeline's 256 MiB budget.
#
# Environment: MLPIPE_BENCH_VENV (a Python with ../shared/bench/requirements.txt; made in
# target/bench-venv when absent), MLPIPE_BENCH_DATA (the folder of tab_ROWS.{parquet,csv};
# generated into target/bench-data when absent), MLPIPE_BENCH_PEERS (a comma-separated
# subset of run_bench.py's peers; default all), MLPIPE_SHARED (../shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
rows=${1:-5000000}
formats=${2:-parquet,csv}
runs=${3:-3}
[ -f "$shared/bench/run_bench.py" ] || { echo "cannot find $shared/bench/run_bench.py (set MLPIPE_SHARED)" >&2; exit 2; }
cd "$root"
venv=$(realpath -m "${MLPIPE_BENCH_VENV:-target/bench-venv}")
data=$(realpath -m "${MLPIPE_BENCH_DATA:-target/bench-data}")
peers=${MLPIPE_BENCH_PEERS:-polars,polars-stream,polars-2pass,pyarrow,pyarrow-2pass,duckdb,pandas-sklearn}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$shared/bench/requirements.txt"
fi
for format in ${formats//,/ }; do
    [ -f "$data/tab_${rows}.${format}" ] \
        || "$venv/bin/python" "$shared/bench/gen_data.py" "$rows" --formats "$format" --out "$data"
done
cargo build --release --quiet
host=$root/target/release/mlpipe-host
pipeline=$root/examples/tabular-prep.toml
tables=$(mktemp -d)
trap 'rm -rf "$tables"' EXIT

for format in ${formats//,/ }; do
    # The source component that reads this format (the file's extension is the format).
    # The parquet and csv sources take the example's `read_dictionary`; the ipc source
    # (whose file holds plain strings) gets a source table of its own.
    case $format in
        parquet) source=parquet; set_source="--set source.type=parquet --set source.path={in}" ;;
        csv) source=csv; set_source="--set source.type=csv --set source.path={in}" ;;
        arrow) source=ipc; set_source="--set 'source={type=\"ipc\",path=\"{in}\"}'" ;;
        *) echo "unknown format $format (parquet, csv or arrow)" >&2; exit 2 ;;
    esac
    "$host" plugins list | grep -qw "$source" \
        || { echo "no source \`$source\` among the loaded plugins: cannot run the $format input" >&2; exit 2; }
    mlpipe="mlpipe=$host run $pipeline --quiet $set_source --set sink.path={out}"
    "$venv/bin/python" "$shared/bench/run_bench.py" --rows "$rows" --runs "$runs" \
        --formats "$format" --peers "$peers" --data "$data" --extra "$mlpipe" \
        | tee "$tables/$format.md"
done

# Ratios: each peer's median wall time over mlpipe's, per format.
"$venv/bin/python" - "$tables"/*.md <<'PY'
import sys
print("\n| input | peer | peer wall s | mlpipe wall s | peer / mlpipe | mlpipe CPU s | mlpipe peak RSS MiB |")
print("|---|---|---:|---:|---:|---:|---:|")
for path in sys.argv[1:]:
    runs = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] not in ("peer", "---"):
            try:
                runs[cells[0]] = (cells[1], float(cells[2]), float(cells[4]), float(cells[6]), cells[7])
            except ValueError:
                print(f"| {cells[1]} | {cells[0]} | {cells[2]} | | | | |")
    if "mlpipe" not in runs:
        print(f"| {path} | mlpipe failed or missing | | | | | |")
        continue
    fmt, wall, cpu, rss, check = runs.pop("mlpipe")
    if check == "DIFFERS":
        print(f"| {fmt} | mlpipe's output DIFFERS from the reference | | | | | |")
    for peer, (_, peer_wall, _, _, _) in sorted(runs.items(), key=lambda r: r[1][1]):
        print(f"| {fmt} | {peer} | {peer_wall:.2f} | {wall:.2f} | {peer_wall / wall:.2f} | {cpu:.2f} | {rss:.0f} |")
PY
