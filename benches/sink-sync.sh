#!/usr/bin/env bash
# What a busy exactly-once sink costs at checkpoints: a file is appended to
# at RATE lines/s (8 words each, drawn from the Moby Dick fixture) for
# SECONDS while sluice follows it in per-event mode with sliding 10 s
# windows every 1 s and update output, so each line writes 80 results to
# the exactly-once jsonl: sink (about 170 MB/s at 20,000 lines/s), with a
# checkpoint every second. Prints, from the run report, the checkpoints'
# pause (the executor's time per checkpoint, monotonic clock) and write
# (the time after it, on a thread of its own: syncing the sink's file, then
# writing, syncing and renaming the checkpoint), and how many lines were
# processed.
# Usage: benches/sink-sync.sh [RATE] [SECONDS] [BINARY]   (defaults 20000, 20, the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-20000}
seconds=${2:-20}
bin=${3:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin sluice
  bin=target/release/sluice
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: > "$work/in.log"
python3 - "$work/in.log" "$rate" "$seconds" tests/fixtures/moby-dick.txt <<'PY' &
import random, sys, time
path, rate, secs, book = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
words = open(book, encoding="utf-8").read().split()
random.seed(1)
start, n = time.time(), 0
with open(path, "a", encoding="utf-8") as f:
    while time.time() - start < secs:
        due = int((time.time() - start) * rate)
        lines = [" ".join(random.choice(words) for _ in range(8)) for _ in range(due - n)]
        n = due
        if lines:
            f.write("\n".join(lines) + "\n")
            f.flush()
        time.sleep(0.01)
PY
appender=$!
timeout -s INT "$seconds" "$bin" run --source "file:$work/in.log" --mode per-event --window sliding:10s,1s \
  --output update --sink "jsonl:$work/out.jsonl" --checkpoint-dir "$work/ck" --checkpoint-interval 1s \
  --no-progress --report "$work/report.json" 2>"$work/err.txt" || true
wait $appender
if [ ! -s "$work/report.json" ]; then
  echo "sluice wrote no report:" >&2
  tail -5 "$work/err.txt" >&2
  exit 1
fi
python3 - "$work/report.json" "$work/out.jsonl" "$work/in.log" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
c = r["checkpoints"]
lines = sum(1 for _ in open(sys.argv[3], "rb"))
print(f"lines appended {lines}, processed {r['events']}; results {os.path.getsize(sys.argv[2]) / 1e6:.0f} MB")
print(f"checkpoints {c['taken']}: pause mean {c['mean_ms']:.1f} ms, max {c['max_ms']:.1f} ms; "
      f"write mean {c['write_mean_ms']:.1f} ms, max {c['write_max_ms']:.1f} ms")
PY
