#!/usr/bin/env bash
# Kafka benchmarks against a real broker (tansu by default, started by
# scripts/kafka-broker.sh; or SLUICE_KAFKA_BROKERS=host:port for another).
#
# 1. Throughput: COUNT messages are produced flat out into a 3-partition
#    topic, one message per record batch (tansu 0.6.0 answers a fetch from
#    the middle of a record batch with the next batch, skipping the rest of
#    the one asked for; a consumer that pauses and resumes fetches from the
#    middle of a batch, so with larger batches tansu drops records there;
#    see BENCHMARKS.md); then the bare consumer loop drains it (no engine: what the broker
#    and librdkafka deliver), and sluice counts it with --no-follow in each
#    mode. sluice keeping up with the bare drain means the broker, not
#    sluice, is the limit.
# 2. Per-event latency: sluice follows a fresh topic in per-event mode while
#    the load generator sends RATE messages/s for SECONDS with linger.ms=0,
#    each carrying its intended send time (first field, ns; coordinated
#    omission corrected). End-to-end = sink emit (wall) - intended send time
#    (wall), from sluice's report.
#
# Usage: benches/kafka.sh [COUNT] [RATE] [SECONDS]   (defaults 200000, 10000, 20;
# COUNT 0 skips the throughput part)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-200000}
rate=${2:-10000}
seconds=${3:-20}
cargo build --release --quiet --bin sluice --example kafka_load
brokers=${SLUICE_KAFKA_BROKERS:-$(scripts/kafka-broker.sh start 19092)}
tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
make_topic() {
  if [ -z "${SLUICE_KAFKA_BROKERS:-}" ]; then
    "$tansu_bin" topic create --broker "tcp://$brokers" --partitions "$2" "$1" >/dev/null
  else
    echo "create topic $1 ($2 partitions) on $brokers first" >&2
  fi
}
load=target/release/examples/kafka_load
sluice=target/release/sluice
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "$count" -gt 0 ]; then
  echo "== throughput: $count messages, 3 partitions, broker $brokers"
  topic=bench-tp-$$-$(date +%s)
  make_topic "$topic" 3
  $load produce "$brokers" "$topic" 0 "$count" batch.num.messages=1
  for run in 1 2; do
    $load drain "$brokers" "$topic"
    for mode in per-event micro-batch; do
      $sluice run --source "kafka:$brokers/$topic?from=earliest" --no-follow --mode "$mode" --window global \
        --sink null --report "$out/$mode.json" 2>/dev/null
      python3 - "$out/$mode.json" "$mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"sluice {sys.argv[2]:<12} {r['events']} messages in {r['elapsed_s']:.2f} s: {r['events_per_s']:.0f} messages/s, {r['mb_per_s']:.1f} MB/s")
PY
    done
  done
fi

echo "== per-event latency: $rate messages/s for $seconds s, linger.ms=0, 1 partition"
# tansu holds a fetch for fetch.wait.max.ms (librdkafka's default 500 ms)
# even when data is there; a real Kafka answers as soon as there is data.
# Both consumers below ask for 5 ms, and read the same messages at the
# same time: the bare consumer loop (broker + librdkafka only) and sluice.
# sluice runs on one worker: tansu takes more than one of this machine's
# two cores at this rate, and two shard threads besides the router and
# the consumer thread would measure the machine's oversubscription.
topic=bench-lat-$$-$(date +%s)
make_topic "$topic" 1
fetch=fetch.wait.max.ms=5
$sluice run --source "kafka:$brokers/$topic?from=latest" --mode per-event --output update --window tumbling:1s \
  --event-time first-field --sink null --report "$out/latency.json" --kafka-option "$fetch" --parallelism 1 \
  2>"$out/sluice.log" &
pid=$!
$load latency "$brokers" "$topic" $((rate * seconds)) "$fetch" &
bare=$!
sleep 3 # both assigned and at the end of the (empty) partition
$load produce "$brokers" "$topic" "$rate" $((rate * seconds))
wait $bare
sleep 1
kill -TERM $pid
wait $pid
python3 - "$out/latency.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency"]
print(f"sluice: events {r['events']}, clocks {l['clocks']}")
stages = l.get("stages", {})
figures = [(k, l.get(k)) for k in ("processing", "end_to_end")]
figures += [(k, stages.get(k)) for k in ("source_wait", "queueing", "compute", "sink_write")]
for kind, s in figures:
    if s:
        print(f"sluice {kind:<11}", "  ".join(f"{p} {s[f]:.1f} µs" for p, f in
              [("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p999_us"), ("max", "max_us")]))
PY
