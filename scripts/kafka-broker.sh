#!/usr/bin/env bash
# Starts a real Kafka-compatible broker for the Kafka tests: tansu 0.6.0,
# a broker written in Rust, with memory storage on a loopback port.
# Installs it first if it is missing (about 12 minutes the first time; it
# stays in ~/.cargo/bin).
#
#   scripts/kafka-broker.sh start [PORT]   # prints the broker address
#   scripts/kafka-broker.sh stop
#
# Point the tests at it (or at any broker) with
#   SLUICE_KAFKA_BROKERS=127.0.0.1:PORT cargo test --workspace
set -euo pipefail
cmd=${1:-start}
port=${2:-19092}
state=${TMPDIR:-/tmp}/sluice-tansu-$port
tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")

case "$cmd" in
start)
  if [ ! -x "$tansu_bin" ]; then
    echo "kafka-broker: installing tansu 0.6.0 (about 12 minutes the first time)" >&2
    cargo install tansu --version 0.6.0 --locked --features dynostore >&2
    tansu_bin="$HOME/.cargo/bin/tansu"
  fi
  if [ -f "$state.pid" ] && kill -0 "$(cat "$state.pid")" 2>/dev/null; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  "$tansu_bin" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$state.log" 2>&1 &
  echo $! >"$state.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      exit 0
    fi
    sleep 0.1
  done
  echo "kafka-broker: tansu did not listen on 127.0.0.1:$port within 10 s; see $state.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$state.pid" ]; then
    kill "$(cat "$state.pid")" 2>/dev/null || true
    rm -f "$state.pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop [PORT]" >&2
  exit 2
  ;;
esac
