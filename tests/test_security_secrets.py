"""Secrets: the API key comes only from the environment variable the config names, and never reaches
a file (saved config, W&B run, side logs, cache, records, Ray logs) or an error message.

Run: .venv/bin/pytest tests/test_security_secrets.py            (the pipeline scan is marked slow)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from configs.loader import load_config, save_resolved
from configs.schema import RunConfig
from configs.tracking_schema import WandbConfig
from generation.storage.secrets import public_env, redact, redact_data, secret_env_names, secret_values
from generation.storage.tracking import Tracker

CLI = [sys.executable, "-m", "launch.cli"]
FAKE_KEY = "sk-FAKE-canary-7c1e2b9d4f3a5e6b8c0d1e2f"  # recognisable, long, never a real key
KEY_ENV = "LD_TEST_TEACHER_KEY"


def files_containing(roots: list[Path], needle: str) -> list[str]:
    """Every file under `roots` whose bytes contain `needle` (plain, or as UTF-16 as some logs are)."""
    patterns = (needle.encode(), needle.encode("utf-16-le"))
    hits = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(p in data for p in patterns):
                    hits.append(str(path))
    return hits


# -- unit level ------------------------------------------------------------------------------------

def test_redact_replaces_every_secret_and_leaves_short_values_alone():
    secrets = [FAKE_KEY, "tiny"]
    assert redact(f"401: Incorrect API key provided: {FAKE_KEY}.", secrets) == "401: Incorrect API key provided: ***."
    assert redact("tiny stays", secrets) == "tiny stays"  # too short to be a key: not redacted
    data = {"a": [FAKE_KEY, 3, {"b": f"x{FAKE_KEY}y"}], FAKE_KEY: 1.5}
    assert json.dumps(redact_data(data, secrets)).count("***") == 3
    assert FAKE_KEY not in json.dumps(redact_data(data, secrets))


def test_secret_names_come_from_config_and_well_known_patterns():
    environ = {KEY_ENV: FAKE_KEY, "WANDB_API_KEY": "w" * 40, "HF_TOKEN": "h" * 30, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "MY_CUSTOM": "c" * 20}
    cfg = {"teacher": {"api_key_env": "MY_CUSTOM"}}
    assert secret_env_names(cfg, environ) == {KEY_ENV, "WANDB_API_KEY", "HF_TOKEN", "MY_CUSTOM"}
    assert set(secret_values(cfg, environ)) == {FAKE_KEY, "w" * 40, "h" * 30, "c" * 20}
    # what goes into Ray's runtime_env (which Ray logs) keeps the offline switches, drops the keys
    assert public_env(("HF_", "WANDB_"), environ) == {"HF_HUB_OFFLINE": "1"}


def test_tracker_side_logs_and_tables_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    config = {"teacher": {"api_key_env": KEY_ENV, "model": "m"}}
    tracker = Tracker(tmp_path, WandbConfig(mode="disabled"), "job", config=config)
    tracker.log({"error": f"teacher said: bad key {FAKE_KEY}", "n": 1})
    tracker.log_table("rows", ["reply"], [[f"echo {FAKE_KEY}"]])
    tracker.finish()
    assert files_containing([tmp_path], FAKE_KEY) == []
    assert "bad key ***" in (tmp_path / "metrics" / "job.jsonl").read_text()


def test_saved_config_holds_the_variable_name_only(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    cfg = load_config(None, ["teacher.backend=openai", f"teacher.api_key_env={KEY_ENV}"], RunConfig)
    text = save_resolved(cfg, tmp_path).read_text()
    assert f"api_key_env: {KEY_ENV}" in text and FAKE_KEY not in text


def test_a_key_pasted_into_the_config_is_refused_without_echoing_it(tmp_path):
    proc = subprocess.run([*CLI, "generate", "configs/quickstart.yaml", "teacher.backend=openai",
                           f"teacher.api_key_env={FAKE_KEY}", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "teacher.api_key_env must be the NAME of an environment variable" in proc.stderr
    assert FAKE_KEY not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()


def test_missing_key_variable_is_named_in_the_error():
    from generation.teachers.base import TeacherError
    from generation.teachers.openai_backend import read_api_key

    os.environ.pop("LD_TEST_UNSET_KEY", None)
    with pytest.raises(TeacherError, match="LD_TEST_UNSET_KEY .*is not set"):
        read_api_key("LD_TEST_UNSET_KEY")


# -- the pipeline, over HTTP, with a recognisable fake key ----------------------------------------------

def _cli_env(tmp: Path, key: str) -> dict[str, str]:
    env = {**os.environ, KEY_ENV: key, "RAY_TMPDIR": str(tmp / "ray"), "WANDB_MODE": "offline",
           "WANDB_CONFIG_DIR": str(tmp / "wandb-config"), "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
           "WANDB_DATA_DIR": str(tmp / "wandb-data"), "PYTHONPATH": str(Path(__file__).parent)}
    for sub in ("ray", "wandb-config", "wandb-cache", "wandb-data"):
        (tmp / sub).mkdir(exist_ok=True)
    return env


@pytest.mark.slow
def test_pipeline_with_a_fake_key_writes_it_nowhere():
    from teacher_server import running_server

    # a short base path: Ray puts unix sockets under RAY_TMPDIR (107-byte limit)
    tmp = Path(tempfile.mkdtemp(prefix="ldsec", dir="/tmp"))
    try:
        run_dir = tmp / "run"
        env = _cli_env(tmp, FAKE_KEY)
        with running_server(reply_fn="expert_reply:pursuit_expert", require_api_key=FAKE_KEY) as server:
            common = [f"teacher.base_url={server.url}", "teacher.backend=openai", "teacher.model=m",
                      f"teacher.api_key_env={KEY_ENV}", "generation.train_episodes=4",
                      "generation.episodes_per_unit=2", "eval.episodes=4", "eval.policies=[teacher,majority]",
                      "ray.num_cpus=2", "generation.progress=false", "--run-dir", str(run_dir)]
            for command in ("generate", "evaluate"):
                args = ["configs/quickstart.yaml", *common] if command == "generate" else common
                proc = subprocess.run([*CLI, command, *args], capture_output=True, text=True, timeout=600, env=env)
                assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
                assert FAKE_KEY not in proc.stdout + proc.stderr
            assert server.stats()["ok"] > 0 and server.stats().get("unauthorized", 0) == 0  # the key was used
        assert (run_dir / "results.json").exists() and list((run_dir / "wandb").rglob("*.wandb"))
        assert list((run_dir / "data").glob("*.sqlite")) or list((run_dir / "data").rglob("*cache*"))
        assert files_containing([tmp], FAKE_KEY) == []

        # A wrong key: the server's 401 echoes the key sent (as OpenAI does); the error must not.
        bad_run = tmp / "bad"
        with running_server(reply_fn="expert_reply:pursuit_expert", require_api_key="some-other-key-123") as server:
            proc = subprocess.run([*CLI, "generate", "configs/quickstart.yaml", f"teacher.base_url={server.url}",
                                   "teacher.backend=openai", "teacher.model=m", f"teacher.api_key_env={KEY_ENV}",
                                   "teacher.max_retries=0", "--run-dir", str(bad_run)],
                                  capture_output=True, text=True, timeout=300, env=env)
            assert server.stats()["unauthorized"] >= 1
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "api_key_env" in proc.stderr  # the hint names the setting to check
        assert FAKE_KEY not in proc.stdout + proc.stderr
        assert files_containing([tmp], FAKE_KEY) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
