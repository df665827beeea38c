#!/usr/bin/env bash
# Set up logic-distill in ./.venv with everything it needs (the `dev` extra adds the test tools).
# On a machine without an NVIDIA GPU, torch and friends are pinned to the CPU build through
# launch/constraints-cpu.txt: an unconstrained install would pull several GB of CUDA wheels.
# Re-running is cheap: the install is skipped while pyproject.toml and the constraints are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  constraints=launch/constraints-gpu.txt
else
  constraints=launch/constraints-cpu.txt
fi

[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=.venv/.logic-distill-installed
want=$(cat pyproject.toml "$constraints" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "installing logic-distill into .venv (constraints: $constraints) ..."
# uv resolves and installs in under a minute where pip takes several; pip is the fallback.
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)  # where this machine keeps its CPU torch wheel
if .venv/bin/pip install --quiet uv >/dev/null 2>&1; then
  # --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing would ever be
  # compiled, and every import of torch/transformers/deepspeed in every test subprocess would re-parse
  # its sources (the test suite ran about 1.7x slower).
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -c "$constraints" "${find_links[@]}" -e ".[dev]"
else
  # pip's notes about unused local index folders are noise; real errors still fail the script.
  { .venv/bin/pip install --quiet -c "$constraints" -e ".[dev]" 2>&1; } \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
echo "$want" > "$stamp"
echo "installed: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
