#!/usr/bin/env bash
# Parquet → Parquet (zstd): the `parquet` source and sink against polars, DuckDB and pyarrow
# doing the same conversion, in the same run, each with its own default zstd settings.
#
#   benches/scripts/parquet_write.sh [FILE] [ROUNDS]
#       FILE    default target/bench-data/tab_5000000.parquet (../shared/bench/gen_data.py)
#       ROUNDS  default 3 (after one warm-up round)
#
# Environment: PYTHON (with polars, duckdb, pyarrow; default target/bench-venv/bin/python),
# SINK (extra TOML lines for the sink, e.g. 'compression_level = 3'). Prints the timing
# table, then each output's size. Goal: mlpipe faster than the fastest peer (its ratio > 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
cd "$root"
file=$(realpath "${1:-target/bench-data/tab_5000000.parquet}")
rounds=${2:-3}
python=${PYTHON:-target/bench-venv/bin/python}
[ -f "$file" ] || { echo "no $file: generate it with $shared/bench/gen_data.py" >&2; exit 2; }
cargo build --release --quiet -p mlpipe-host -p mlpipe-plugin-parquet
out=$root/target/bench-parquet-write
mkdir -p "$out"
pipeline=target/bench-parquet-write.toml
cat > "$pipeline" <<TOML
[source]
type = "parquet"
path = "$file"

[sink]
type = "parquet"
path = "$out/mlpipe.parquet"
overwrite = true
${SINK:-}
TOML
"$python" "$root/benches/scripts/parquet_bench.py" "$rounds" \
    "mlpipe=target/release/mlpipe-host run $pipeline --quiet" \
    "polars=$python -c 'import sys, polars as pl; pl.read_parquet(sys.argv[1]).write_parquet(sys.argv[2], compression=\"zstd\")' $file $out/polars.parquet" \
    "polars-streaming=$python -c 'import sys, polars as pl; pl.scan_parquet(sys.argv[1]).sink_parquet(sys.argv[2], compression=\"zstd\")' $file $out/polars-streaming.parquet" \
    "duckdb=$python -c 'import sys, duckdb; duckdb.sql(f\"COPY (SELECT * FROM read_parquet({sys.argv[1]!r})) TO {sys.argv[2]!r} (FORMAT parquet, COMPRESSION zstd)\")' $file $out/duckdb.parquet" \
    "pyarrow=$python -c 'import sys, pyarrow.parquet as pq; pq.write_table(pq.read_table(sys.argv[1]), sys.argv[2], compression=\"zstd\")' $file $out/pyarrow.parquet"
echo
echo "output sizes (MB):"
stat -c '%s %n' "$out"/*.parquet | awk '{ n = split($2, p, "/"); printf "  %-24s %8.1f\n", p[n], $1 / 1e6 }'
