#!/usr/bin/env bash
# What one fetch costs the broker as a partition grows: for each SIZE, a
# fresh 1-partition topic gets SIZE messages, one per record batch (as a
# producer with linger.ms=0 at 10,000 messages/s sends them), and then a
# consumer with an open connection seeks to the last message and times the
# fetch that brings it (connectors/kafka/examples/fetch_cost.rs).
#
# On tansu 0.6.0 with memory storage the time grows with the partition:
# every fetch lists every stored batch of the partition (see BENCHMARKS.md,
# "Kafka"). A broker with an offset index stays flat.
#
# Usage: benches/kafka-fetch-cost.sh [SIZE...]   (default 1000 10000 50000)
# SLUICE_KAFKA_BROKERS=host:port points it at another broker (the topics
# are then expected to exist: kfc-SIZE).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
cargo build --release --quiet --example kafka_load
cargo build --release --quiet -p sluice-kafka --example fetch_cost
brokers=${SLUICE_KAFKA_BROKERS:-$(scripts/kafka-broker.sh start 19092)}
tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
for n in "${sizes[@]}"; do
  if [ -z "${SLUICE_KAFKA_BROKERS:-}" ]; then
    topic=kfc-$n-$$-$(date +%s)
    "$tansu_bin" topic create --broker "tcp://$brokers" --partitions 1 "$topic" >/dev/null
    target/release/examples/kafka_load produce "$brokers" "$topic" 0 "$n" batch.num.messages=1 2>/dev/null
  else
    topic=kfc-$n
  fi
  target/release/examples/fetch_cost "$brokers" "$topic" 20
done
