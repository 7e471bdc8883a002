#!/usr/bin/env bash
# Word-count throughput of sluice, per mode, against `wc -w` on the same file.
# Usage: benches/wc-compare.sh [FILE] [COPIES]   (default: the Moby Dick fixture, 25 copies, about 32 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-tests/fixtures/moby-dick.txt}
copies=${2:-25}
cargo build --release --quiet --bin sluice
input=$(mktemp)
trap 'rm -f "$input"' EXIT
for _ in $(seq "$copies"); do cat "$file"; done > "$input"
bytes=$(stat -c %s "$input")
cat "$input" > /dev/null # warm the page cache
secs() { local s e; s=$(date +%s%N); "$@" > /dev/null 2>&1; e=$(date +%s%N); awk -v d=$((e - s)) 'BEGIN { print d / 1e9 }'; }
mbps() { awk -v b="$bytes" -v t="$1" 'BEGIN { print b / t / 1e6 }'; }
printf '%-28s %10s %10s\n' "what" "seconds" "MB/s"
for run in 1 2 3; do
  t=$(secs wc -w "$input")
  printf '%-28s %10.3f %10.1f\n' "wc -w (run $run)" "$t" "$(mbps "$t")"
  for mode in per-event micro-batch; do
    t=$(secs target/release/sluice run --source "file:$input" --no-follow --mode "$mode" --sink null)
    printf '%-28s %10.3f %10.1f\n' "sluice $mode (run $run)" "$t" "$(mbps "$t")"
  done
done
