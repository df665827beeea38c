"""A Ray evaluation worker that dies mid-task is replaced and its seeds replayed; past
`eval.unit_retries` the run stops with a message naming the policy and the seeds.

The fault is real: an environment (registered by this module, which Ray workers import through
`task.env_modules`) calls `os._exit` inside a worker on its first episode, once per marker file.

Run: .venv/bin/pytest tests/test_faults_eval_worker.py     (slow: starts a Ray cluster)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generation.ld.envs.registry import ENV_FACTORIES, expert_for, register_env

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dying_pursuit(task):
    env = ENV_FACTORIES["pursuit"](task)
    original_reset = env.reset

    def reset(seed, instruction):
        # Die once, and never in the driver (it builds the function base with this env too).
        if os.getpid() != task.options["driver_pid"]:
            try:
                os.close(os.open(task.options["die_marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(17)
        return original_reset(seed, instruction)

    env.reset = reset
    return env


register_env("dying_pursuit", _dying_pursuit, expert=expert_for("pursuit"))  # experts are found by registered name

PROBE = """
import json, sys
from pathlib import Path
import yaml
from configs.loader import load_config
from configs.schema import RunConfig
from generation.storage.tracking import Tracker
from ray_jobs.ld_data import write_function_base
from ray_jobs.evaluate import EvaluationFailed, evaluate_policies

tmp = Path(sys.argv[1])
out = {}
for retries in (2, 0):
    marker = tmp / f"died-{retries}"
    (tmp / "cfg.yaml").write_text(yaml.safe_dump({"task": {
        "env": "dying_pursuit", "env_modules": ["test_faults_eval_worker"],
        "options": {"die_marker": str(marker), "driver_pid": __import__("os").getpid()}}}))
    cfg = load_config(tmp / "cfg.yaml", ["eval.num_workers=2", "ray.num_cpus=2", "wandb.mode=disabled",
                                         f"eval.unit_retries={retries}"], RunConfig)
    run_dir = tmp / f"run{retries}"
    run_dir.mkdir()
    base = write_function_base(cfg, run_dir, Tracker(run_dir, cfg.wandb, "probe"))
    try:
        res = evaluate_policies(cfg, str(base), {"teacher": {"kind": "teacher"}}, list(range(900, 906)))
        out[retries] = {"seeds": [e["seed"] for e in res["teacher"]["episodes"]], "died": marker.exists()}
    except EvaluationFailed as exc:
        out[retries] = {"error": str(exc), "died": marker.exists()}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_a_dying_eval_worker_is_replaced_and_its_seeds_replayed(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(REPO_ROOT)])}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["2"]["died"] and out["2"]["seeds"] == list(range(900, 906))  # every seed, once
    assert out["0"]["died"] and "worker" in out["0"]["error"] and "died 1 times" in out["0"]["error"]
    assert "eval.unit_retries=0" in out["0"]["error"] and "teacher" in out["0"]["error"]
