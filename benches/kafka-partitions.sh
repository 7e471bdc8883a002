#!/usr/bin/env bash
# Starting on a topic of many partitions: the wall time of a bounded read
# (`sluice run --no-follow`) of a PARTITIONS-partition topic holding 2,000
# lines, from start to finish. Before reading, sluice asks the broker for
# the partitions' first and end offsets. Against tansu (started by
# scripts/kafka-broker.sh), or SLUICE_KAFKA_BROKERS=host:port with the
# topic made there first.
#
# Usage: benches/kafka-partitions.sh [PARTITIONS] [SLUICE_BINARY]   (default 64)
set -euo pipefail
cd "$(dirname "$0")/.."
partitions=${1:-64}
bin=${2:-target/release/sluice}
cargo build --release --quiet --bin sluice --example kafka_load
brokers=${SLUICE_KAFKA_BROKERS:-$(scripts/kafka-broker.sh start 19092)}
topic=bench-parts-$$-$(date +%s)
if [ -z "${SLUICE_KAFKA_BROKERS:-}" ]; then
  "$(command -v tansu || echo "$HOME/.cargo/bin/tansu")" topic create --broker "tcp://$brokers" \
    --partitions "$partitions" "$topic" >/dev/null
fi
target/release/examples/kafka_load produce "$brokers" "$topic" 0 2000 batch.num.messages=1 >/dev/null
for run in 1 2 3; do
  start=$(date +%s%N)
  "$bin" run --source "kafka:$brokers/$topic?from=earliest" --no-follow --window global --sink null \
    --no-progress > /dev/null 2>&1
  end=$(date +%s%N)
  echo "run $run: $partitions partitions, bounded read of 2000 messages: $(((end - start) / 1000000)) ms"
done
