#!/usr/bin/env bash
# What recording latency costs: the same bounded word count with latency
# recorded (the default) and with --no-latency, interleaved, per mode and
# output; prints the median time of each and the difference per line and
# per word.
# Usage: benches/latency-cost.sh [FILE] [COPIES] [ROUNDS]
#   (default: the Moby Dick fixture, 20 copies, about 25 MB; 7 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-tests/fixtures/moby-dick.txt}
copies=${2:-20}
rounds=${3:-7}
cargo build --release --quiet --bin sluice
input=$(mktemp)
report=$(mktemp)
trap 'rm -f "$input" "$report"' EXIT
for _ in $(seq "$copies"); do cat "$file"; done > "$input"
cat "$input" > /dev/null
run() { # mode output latency-flag -> seconds (the run's own elapsed time)
  target/release/sluice run --source "file:$input" --no-follow --mode "$1" --output "$2" --parallelism 1 \
    --sink null --no-progress --report "$report" $3 > /dev/null 2>&1
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["elapsed_s"], r["events"], r["items"])' "$report"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '%-12s %-7s %12s %12s %14s %14s\n' mode output "on (s)" "off (s)" "ns/line" "ns/word"
for mode in per-event micro-batch; do
  for output in update final; do
    on=(); off=()
    for _ in $(seq "$rounds"); do
      read -r t events items < <(run "$mode" "$output" "")
      on+=("$t")
      read -r t _ _ < <(run "$mode" "$output" --no-latency)
      off+=("$t")
    done
    a=$(printf '%s\n' "${on[@]}" | median)
    b=$(printf '%s\n' "${off[@]}" | median)
    awk -v m="$mode" -v o="$output" -v a="$a" -v b="$b" -v e="$events" -v i="$items" \
      'BEGIN { printf "%-12s %-7s %12.3f %12.3f %14.1f %14.2f\n", m, o, a, b, (a - b) * 1e9 / e, (a - b) * 1e9 / i }'
  done
done
