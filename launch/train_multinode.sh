#!/usr/bin/env bash
# Multi-node training: run this once on EVERY node (by hand, with pdsh, or from SLURM: slurm_train.sbatch).
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC_PER_NODE=8 bash launch/train_multinode.sh \
#       --config runs/exp1/config.resolved.yaml --data runs/exp1/data --student runs/exp1/students/init \
#       --out runs/exp1/students/ld --run-dir runs/exp1 --job train_ld
#
# NNODES           machines in the job                      NODE_RANK   this machine, 0..NNODES-1
# MASTER_ADDR      address of node 0 (all nodes reach it)   MASTER_PORT rendezvous port (29500)
# NPROC_PER_NODE   processes per machine (default: its GPUs, or the config's share on CPU)
# LAUNCHER         accelerate (default) or torchrun         DRY_RUN=1   print the command, run nothing
# PYTHON           interpreter (default .venv/bin/python)
# Everything else (ZeRO stage, offload, precision, batch sizes, resume) comes from the run config.
# With accelerate, the `standard` DeepSpeed multinode launcher is used (the pdsh default would
# silently train one node alone). Checkpoints (<run-dir>/checkpoints) must be on a shared filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${NNODES:?set NNODES (machines in the job)}" "${NODE_RANK:?set NODE_RANK (0..NNODES-1)}"
: "${MASTER_ADDR:?set MASTER_ADDR (node 0 address)}"
PYTHON=${PYTHON:-.venv/bin/python}
args=(--launcher "${LAUNCHER:-accelerate}" --nnodes "$NNODES" --node-rank "$NODE_RANK"
      --master-addr "$MASTER_ADDR" --master-port "${MASTER_PORT:-29500}")
if [ -n "${NPROC_PER_NODE:-}" ]; then
  args+=(--nproc-per-node "$NPROC_PER_NODE")
elif command -v nvidia-smi >/dev/null 2>&1; then
  args+=(--nproc-per-node "$(nvidia-smi --list-gpus | wc -l)")
fi
[ "${DRY_RUN:-0}" = 1 ] && args+=(--dry-run)
exec "$PYTHON" -m launch.train_launcher "${args[@]}" -- "$@"
