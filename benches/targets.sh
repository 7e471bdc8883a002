#!/usr/bin/env bash
# Reproduces the latency-lab targets table from a clean checkout, every
# comparison side by side in the same run (this machine is noisy: only
# ratios taken together mean anything).
#
#   1. throughput: a bounded global word count of ~100 MB of text (the Moby
#      Dick fixture repeated) with the null sink, against `LC_ALL=C wc -w`
#      and against the minimal one-thread Rust counter (examples/
#      cost_counter.rs, the COST baseline), at --parallelism 2 and 1, and
#      once more with the whole process held to one CPU (taskset -c 0): at
#      --parallelism 1 the file's reader thread still runs beside the
#      worker, on the other core;
#   2. per-event processing latency at half the highest rate per-event mode
#      keeps up with (found by `sluice sweep`), generator in process;
#   3. micro-batch end-to-end latency at 10 ms, 100 ms and 1 s, each
#      batch's wait and compute, and the one-thread floor for the 1 s
#      batch's compute (the counter over a second of the generator's words);
#   4. peak RSS of the word count as the input grows from 10 MB to 1 GB.
#
# Usage: benches/targets.sh [ROUNDS]   (default 3; the best round counts)
# Needs about 1.2 GB in $TMPDIR, and a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release --quiet --bin sluice --example cost_counter --example sched_gaps
bin=target/release/sluice
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
book=tests/fixtures/moby-dick.txt
copies() { for _ in $(seq "$1"); do cat "$book"; done > "$2"; }
copies 80 "$work/100mb.txt"
bytes=$(stat -c %s "$work/100mb.txt")
cat "$work/100mb.txt" > /dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "input: $bytes bytes ($book x 80)"
echo

secs() { local s e; s=$(date +%s%N); "$@" > /dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000)); }
declare -A best
try() { # name command...
  local name=$1; shift
  local us; us=$(secs "$@")
  if [[ -z "${best[$name]:-}" || $us -lt ${best[$name]} ]]; then best[$name]=$us; fi
}
names=("wc -w" "cost counter" "per-event p2" "micro-batch p2" "per-event p1" "micro-batch p1"
  "cost counter cpu0" "per-event cpu0" "micro-batch cpu0")
for _ in $(seq "$rounds"); do
  try "wc -w" env LC_ALL=C wc -w "$work/100mb.txt"
  try "cost counter" target/release/examples/cost_counter "$work/100mb.txt"
  for p in 2 1; do
    for mode in per-event micro-batch; do
      try "$mode p$p" "$bin" run --source "file:$work/100mb.txt" --no-follow --mode "$mode" --parallelism "$p" \
        --window global --sink null --no-progress
    done
  done
  try "cost counter cpu0" taskset -c 0 target/release/examples/cost_counter "$work/100mb.txt"
  for mode in per-event micro-batch; do
    try "$mode cpu0" taskset -c 0 "$bin" run --source "file:$work/100mb.txt" --no-follow --mode "$mode" --parallelism 1 \
      --window global --sink null --no-progress
  done
done
mbps() { awk -v b="$bytes" -v us="$1" 'BEGIN { printf "%.1f", b / us }'; }
echo "## 1. throughput (best of $rounds, whole process)"
printf '%-16s %10s %10s\n' what seconds MB/s
for n in "${names[@]}"; do
  printf '%-16s %10.3f %10s\n' "$n" "$(awk -v us="${best[$n]}" 'BEGIN { print us / 1e6 }')" "$(mbps "${best[$n]}")"
done
ratio() { awk -v a="${best[$1]}" -v b="${best[$2]}" 'BEGIN { printf "%.2f", b / a }'; }
for mode in per-event micro-batch; do
  echo "target ≥ 1.0x wc -w, $mode --parallelism 2:   $(ratio "$mode p2" "wc -w")x"
  echo "target ≥ 0.9x cost counter, $mode on 1 core: $(ratio "$mode p1" "cost counter")x" \
    "(all on one CPU, taskset -c 0: $(ratio "$mode cpu0" "cost counter cpu0")x)"
done
echo

echo "## 2. per-event processing latency at half the highest sustained rate"
"$bin" sweep --modes per-event --rates 50k,100k,200k,400k,600k,800k,1M,1.2M,1.4M,1.6M,2M,2.4M,3.2M --duration 3s --parallelism 1 \
  --report "$work/sweep.json" > "$work/sweep.txt" 2>&1 || true
max=$(python3 -c '
import json, sys
pts = [p for p in json.load(open(sys.argv[1])) if p["keeps_up"]]
print(int(max(p["rate"] for p in pts)) if pts else 0)' "$work/sweep.json")
half=$((max / 2))
echo "highest rate per-event keeps up with: $max lines/s; measuring at $half"
"$bin" compare --source "gen:$half" --duration 10s --modes per-event --parallelism 1 \
  --report "$work/pe.json" > /dev/null 2>&1
python3 - "$work/pe.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]["latency"]["processing"]
print(f"processing p50 {r['p50_us']:.1f} µs (target ≤ 5), p99 {r['p99_us']:.1f} µs (target ≤ 50)")
PY
echo "the machine's own floor with one busy thread (the executor, driving the generator chained to it):"
target/release/examples/sched_gaps 1 5
echo

echo "## 3. micro-batch end-to-end latency (generator at 20000 lines/s, update output)"
"$bin" compare --source gen:20000 --duration 10s --modes micro-batch:10ms,micro-batch:100ms,micro-batch:1s \
  --parallelism 1 --report "$work/mb.json" > /dev/null 2>&1
python3 - "$work/mb.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    b = r["batch_interval_ms"]
    l = r["latency"]["end_to_end"]
    p50, p99 = l["p50_us"] / 1e3, l["p99_us"] / 1e3
    print(f"B = {b:g} ms: p50 {p50:.2f} ms (target ≤ {b / 2 + 1:g}), p99 {p99:.2f} ms (target ≤ {b + 2:g})")
    s = r["latency"]["stages"]
    print(f"  B = {b:g} ms: batch wait p50 {s['batch_wait']['p50_us'] / 1e3:.2f} ms, compute p50 {s['compute']['p50_us'] / 1e3:.2f} ms")
PY
# Where B = 1 s meets its p50 target: the p50 is the batch wait's (B/2,
# `compare` starts the batch grid with the first line, so every batch is
# whole) plus the batch's compute, which grows with the lines in a batch.
for rate in 5000 10000; do
  "$bin" compare --source "gen:$rate" --duration 10s --modes micro-batch:1s --parallelism 1 \
    --report "$work/mb-$rate.json" > /dev/null 2>&1
  python3 - "$work/mb-$rate.json" "$rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
p50 = r["latency"]["end_to_end"]["p50_us"] / 1e3
c = r["latency"]["stages"]["compute"]["p50_us"] / 1e3
print(f"B = 1000 ms at {sys.argv[2]} lines/s: p50 {p50:.2f} ms (target ≤ 501), compute p50 {c:.2f} ms")
PY
done
# The floor for the 1 s batch: the one-thread counter over one second of
# the generator's words (20,000 lines of 8, drawn from its vocabulary with
# its Zipf weights; the timestamps, which the source strips, left out).
python3 - "$work/genwords.txt" <<'PY'
import random, re, sys
src = open("src/source/generator.rs").read()
start = src.index("const VOCABULARY")
vocab = re.findall(r'"([^"]*)"', src[start:src.index("];", start)])
weights = [1 / r**1.07 for r in range(1, len(vocab) + 1)]
rng = random.Random(42)
with open(sys.argv[1], "w") as f:
    for _ in range(1_000_000):
        f.write(" ".join(rng.choices(vocab, weights, k=8)) + "\n")
PY
for _ in $(seq "$rounds"); do try "counter gen" target/release/examples/cost_counter "$work/genwords.txt"; done
awk -v us="${best[counter gen]}" 'BEGIN { printf "the one-thread counter over 20,000 generator lines: %.2f ms (1,000,000 lines in %.3f s)\n", us / 50000, us / 1e6 }'
echo

echo "## 4. peak RSS of the global word count as the input grows"
copies 8 "$work/10mb.txt"
for _ in $(seq 10); do cat "$work/100mb.txt"; done > "$work/1gb.txt"
printf '%-12s %10s %14s %14s\n' mode input "peak RSS MiB" "MB/s"
for mode in per-event micro-batch; do
  for f in 10mb 100mb 1gb; do
    "$bin" run --source "file:$work/$f.txt" --no-follow --mode "$mode" --parallelism 1 --window global --sink null \
      --no-progress --report "$work/rss.json" > /dev/null 2>&1
    python3 - "$work/rss.json" "$mode" "$f" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss, speed = r["peak_rss_bytes"] / 2**20, r["mb_per_s"]
print(f"{sys.argv[2]:<12} {sys.argv[3]:>10} {rss:14.1f} {speed:14.1f}")
PY
  done
done
