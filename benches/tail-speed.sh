#!/usr/bin/env bash
# The tailer against `cat FILE > /dev/null`, on a 100 MB log, read whole and
# followed while it grows. Usage: benches/tail-speed.sh [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-}
if [ -z "$file" ]; then
  file=$(mktemp)
  trap 'rm -f "$file"' EXIT
  # 100 MB of log-like lines built from the fixture book.
  while [ "$(stat -c %s "$file")" -lt 100000000 ]; do
    sed 's/^/2026-11-23T10:00:00.000Z web-1 app[42]: /' tests/fixtures/moby-dick.txt >> "$file"
  done
fi
cargo build --release --quiet -p sluice-file --example tail_speed
target/release/examples/tail_speed "$file"
target/release/examples/tail_speed "$file" --growing
