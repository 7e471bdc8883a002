#!/usr/bin/env bash
# Following many files: CPU and peak RSS of `sluice run` following a pattern
# of N files (default 1000) for 10 s while a writer appends 50 lines every
# 20 ms to random files among them, with checkpoints every 200 ms.
# Usage: benches/many-files.sh [N] [SLUICE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
bin=${2:-target/release/sluice}
if [ "$bin" = target/release/sluice ]; then cargo build --release --quiet --bin sluice; fi
work=$(mktemp -d)
writer=
cleanup() { [ -n "$writer" ] && kill "$writer" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/logs"
for i in $(seq "$n"); do echo "alpha beta gamma $i" > "$work/logs/f$i.log"; done
(while true; do
  for _ in $(seq 50); do echo "more words $RANDOM" >> "$work/logs/f$((RANDOM % n + 1)).log"; done
  sleep 0.02
done) &
writer=$!
timeout -s INT 10 /usr/bin/time -f "cpu %U s user + %S s system, peak rss %M KiB" -o "$work/time.txt" \
  "$bin" run --source "file:$work/logs/*.log" --checkpoint-dir "$work/ck" --checkpoint-interval 200ms \
  --window global --sink null > /dev/null 2> "$work/err.txt" || true
echo "$n files, 10 s: $(cat "$work/time.txt")"
grep -a -o 'events [0-9]*' "$work/err.txt" | head -1
