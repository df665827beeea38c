#!/usr/bin/env bash
# Submit teacher-data generation to a running Ray cluster with `ray job submit`.
#
#   bash launch/ray_submit.sh http://HEAD_IP:8265 configs/openai_teacher.yaml generation.num_actors=32 \
#        teacher.limits.requests_per_minute=10000 --run-dir /data/runs/exp1
#
# (the CLI's order: config, then key=value overrides, then --run-dir)
# The driver runs on the head node (`ray job submit` starts it there), joins the cluster (ray.address=auto)
# and spreads its actors over every node. Resubmitting the same command resumes: finished tasks are kept,
# answered requests come from the response cache, nothing is billed twice. `ray job logs -f JOB_ID` shows
# the live progress lines; `ray job stop JOB_ID` (or a kill) is safe at any moment.
# The teacher's API key is NOT shipped with the job: export it on every node before `ray start`
# (see launch/ray_cluster.sh, which also puts .venv/bin first on the PATH the job's `python` resolves in).
# The working directory is uploaded; .venv, runs and wandb are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
dashboard=$1; config=$2; shift 2
exec .venv/bin/ray job submit --address="$dashboard" --working-dir=. \
  --runtime-env-json='{"excludes": [".venv", "runs", "wandb", ".git"], "env_vars": {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}}' \
  -- python -m launch.cli generate "$config" ray.address=auto "$@"
