#!/usr/bin/env bash
# A Ray cluster on plain machines for `logic-distill generate` (no autoscaler, no Kubernetes).
#
#   bash launch/ray_cluster.sh head   [--port 6379] [--num-cpus N]     # on the machine that runs the driver
#   bash launch/ray_cluster.sh worker HEAD_IP:6379 [--num-cpus N]      # on every other machine
#   bash launch/ray_cluster.sh status HEAD_IP:6379
#   bash launch/ray_cluster.sh stop                                     # `ray stop` on this machine
#
# Every machine needs the same checkout and .venv (bash launch/setup.sh). Secrets and auth come from the
# environment of `ray start`, which every worker process inherits:
#   export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<one secret, the same on every node and for the driver>
#   export OPENAI_API_KEY=...        # the variable named by teacher.api_key_env, on EVERY node
# Teacher actors are I/O-bound: `--num-cpus` may exceed the cores (e.g. 4x) when generation.actor_num_cpus=1,
# or keep the real count and set generation.actor_num_cpus=0.25.
# The driver's node holds the job's state (manifest, shards, response cache, rate limiter): give
# --run-dir a path on its local disk (SQLite in WAL mode must not live on NFS).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"  # jobs' `python` and every worker process run from this .venv
ray=.venv/bin/ray
role=${1:-}
shift || true
case "$role" in
  head)
    port=6379
    if [ "${1:-}" = "--port" ]; then port=$2; shift 2; fi
    exec "$ray" start --head --port="$port" --dashboard-host=0.0.0.0 --disable-usage-stats "$@"
    ;;
  worker)
    [ -n "${1:-}" ] || { echo "usage: $0 worker HEAD_IP:PORT [ray start options]" >&2; exit 2; }
    address=$1; shift
    exec "$ray" start --address="$address" --disable-usage-stats "$@"
    ;;
  status)
    exec "$ray" status ${1:+--address="$1"}
    ;;
  stop)
    exec "$ray" stop
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
