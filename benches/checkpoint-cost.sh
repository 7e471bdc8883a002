#!/usr/bin/env bash
# What checkpoints cost: a followed file read from its start with
# --checkpoint-dir, per mode and checkpoint interval, until the last
# checkpoint covers the whole file; then SIGTERM. Prints, from the run
# report, how many checkpoints were taken, the time the executor paused for
# each (monotonic clock: the barrier, the sink's fdatasync, encoding the
# window state), the time each then took to be written (write, fsync and
# rename, on a thread of its own while events go on), the size of the
# checkpoint file, and the share of the run's time paused. The window is
# global, so every checkpoint carries every distinct word of the input: the
# worst case for its size.
# Usage: benches/checkpoint-cost.sh [FILE] [COPIES]
#   (default: the Moby Dick fixture, 20 copies, about 25 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-tests/fixtures/moby-dick.txt}
copies=${2:-20}
cargo build --release --quiet --bin sluice
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$copies"); do cat "$file"; done > "$work/input.txt"
size=$(stat -c %s "$work/input.txt")
caught_up() { # checkpoint file -> true once it covers the whole input
  python3 - "$1" "$work/input.txt" "$size" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(1)
sys.exit(0 if s["sources"].get("file:" + sys.argv[2], {}).get("offset") == int(sys.argv[3]) else 1)
PY
}
printf '%-17s %-9s %6s %11s %10s %10s %10s %10s %12s %9s\n' mode interval taken "elapsed s" "pause ms" "max" \
  "write ms" "max" "ckpt bytes" "share %"
for mode in per-event micro-batch:100ms; do
  for interval in 1s 100ms; do
    rm -rf "$work/ckpt" "$work/out.jsonl"
    m=${mode%%:*}
    batch=()
    [[ $mode == *:* ]] && batch=(--batch-interval "${mode#*:}")
    target/release/sluice run --source "file:$work/input.txt" --from beginning --mode "$m" "${batch[@]}" \
      --window global --sink "jsonl:$work/out.jsonl" --checkpoint-dir "$work/ckpt" \
      --checkpoint-interval "$interval" --report "$work/report.json" --no-progress 2> "$work/err" &
    pid=$!
    until caught_up "$work/ckpt/checkpoint.json"; do sleep 0.05; done
    kill -TERM "$pid"
    wait "$pid"
    bytes=$(stat -c %s "$work/ckpt/checkpoint.json")
    python3 - "$work/report.json" "$mode" "$interval" "$bytes" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["checkpoints"]
share = 100 * c["taken"] * c["mean_ms"] / 1e3 / r["elapsed_s"]
print(f'{sys.argv[2]:<17} {sys.argv[3]:<9} {c["taken"]:>6} {r["elapsed_s"]:>11.2f} {c["mean_ms"]:>10.2f} {c["max_ms"]:>10.2f} '
      f'{c["write_mean_ms"]:>10.2f} {c["write_max_ms"]:>10.2f} {int(sys.argv[4]):>12} {share:>9.2f}')
PY
  done
done
