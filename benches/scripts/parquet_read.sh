#!/usr/bin/env bash
# Parquet → discard: how fast the `parquet` source decodes a file, against a plain arrow-rs
# loop decoding the same file on the same cores (../shared/bench/limits parquet_decode) and
# pyarrow.parquet.read_table, in the same run.
#
#   benches/scripts/parquet_read.sh [FILE] [ROUNDS]
#       FILE    default target/bench-data/tab_5000000.parquet (../shared/bench/gen_data.py)
#       ROUNDS  default 5 (after one warm-up round)
#
# Environment: PYTHON (with pyarrow; default target/bench-venv/bin/python), LIMITS (the
# folder of the built probes; default target/limits/bin, built here when missing), THREADS
# (cores for mlpipe and the probe; default: all). Goals: mlpipe at least 90 % of the arrow-rs
# loop's speed (ratio >= 0.90 in the last column of its row), faster than pyarrow.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MLPIPE_SHARED:-$root/../shared}
cd "$root"
file=$(realpath "${1:-target/bench-data/tab_5000000.parquet}")
rounds=${2:-5}
python=${PYTHON:-target/bench-venv/bin/python}
limits=${LIMITS:-$root/target/limits/bin}
threads=${THREADS:-$(nproc)}
[ -f "$file" ] || { echo "no $file: generate it with $shared/bench/gen_data.py" >&2; exit 2; }
if [ ! -x "$limits/parquet_decode" ]; then
    LIMITS_TARGET="$root/target/limits" "$shared/bench/limits/build.sh"
    limits=$root/target/limits/bin
fi
cargo build --release --quiet -p mlpipe-host -p mlpipe-plugin-parquet -p mlpipe-plugin-util
pipeline=target/bench-parquet-read.toml
cat > "$pipeline" <<TOML
[source]
type = "parquet"
path = "$file"
threads = $threads

[sink]
type = "discard"
TOML
"$python" "$root/benches/scripts/parquet_bench.py" "$rounds" \
    "mlpipe=target/release/mlpipe-host run $pipeline --quiet" \
    "arrow-rs=$limits/parquet_decode $file 1 $threads" \
    "pyarrow=$python -c 'import sys, pyarrow.parquet as pq; pq.read_table(sys.argv[1])' $file"
