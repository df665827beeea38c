#!/usr/bin/env bash
# Training under torchrun instead of `accelerate launch` (same loop, same DeepSpeed JSON, same resume).
#
# One node:   NPROC_PER_NODE=8 bash launch/train_torchrun.sh --config runs/exp1/config.resolved.yaml \
#                 --data runs/exp1/data --student runs/exp1/students/init --out runs/exp1/students/ld \
#                 --run-dir runs/exp1 --job train_ld
# Each node:  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC_PER_NODE=8 bash launch/train_torchrun.sh ...
#
# torchrun starts the processes; launch/train_launcher.py resolves the run config once into
# <run-dir>/jobs/<job>.json (ZeRO stage, the DeepSpeed JSON, batch), so the Accelerator inside
# training.train runs DeepSpeed exactly as under `accelerate launch`. DRY_RUN=1 prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."
export NNODES=${NNODES:-1} NODE_RANK=${NODE_RANK:-0} MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} LAUNCHER=torchrun
if [ "$NNODES" = 1 ] && [ -z "${MASTER_PORT:-}" ]; then
  # One node: any free port, so two jobs on one machine do not collide.
  MASTER_PORT=$("${PYTHON:-.venv/bin/python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export MASTER_PORT
fi
exec bash launch/train_multinode.sh "$@"
