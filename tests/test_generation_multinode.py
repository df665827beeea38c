"""A two-raylet Ray cluster on one machine (`ray start --head` + `ray start --address`), the generation job
joined to it with `ray.init(address=...)` (the CLI with `ray.address=...`, in its own process with the
cluster's auth token): actors run on both nodes, the cache sits behind one actor.

Run: .venv/bin/pytest tests/test_generation_multinode.py
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from configs.loader import load_config
from configs.schema import RunConfig
from generation.ld.envs.registry import make_env
from generation.storage.shards import Manifest
from generation_fixtures import assert_same_records, reference_records
from teacher_server import running_server

pytestmark = pytest.mark.slow
RAY = str(Path(os.sys.executable).with_name("ray"))
EPISODES = 4


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _node_ports() -> list[str]:
    """Every port a raylet would otherwise take from a fixed default (other clusters may run here too)."""
    names = ["--node-manager-port", "--object-manager-port", "--metrics-export-port", "--runtime-env-agent-port",
             "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port"]
    return [f"{name}={port}" for name, port in zip(names, _free_ports(len(names)))]


@pytest.fixture
def two_node_cluster():
    # token auth as a real cluster should run it: every node and the driver share one token
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    gcs_port, client_port = _free_ports(2)
    temp_dir = tempfile.mkdtemp(prefix="/tmp/ldray")  # short: Ray's unix socket paths must fit 107 bytes
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={gcs_port}", f"--ray-client-server-port={client_port}",
            "--include-dashboard=false", f"--temp-dir={temp_dir}", *common, *_node_ports()]
    worker = [RAY, "start", f"--address=127.0.0.1:{gcs_port}", *common, *_node_ports()]
    started = []
    try:
        started.append(subprocess.Popen(head, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                        start_new_session=True))
        time.sleep(3)
        started.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                        start_new_session=True))
        yield f"127.0.0.1:{gcs_port}", env
    finally:
        for process in reversed(started):  # `ray start --block` stops its own node on SIGTERM
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever of that node is left
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_actors_spread_over_two_raylets(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    run_dir = tmp_path / "run"
    with running_server(reply_fn="expert_reply:pursuit_expert", latency_s=0.01) as server:
        overrides = ["teacher.backend=openai", f"teacher.base_url={server.url}", "teacher.model=m",
                     f"generation.train_episodes={EPISODES}", "generation.episodes_per_unit=2",
                     "generation.num_actors=2", f"ray.address={address}", "wandb.mode=disabled"]
        # the second raylet may still be joining: its actor then waits for it (1 CPU per node, 1 per actor)
        job = subprocess.run([sys.executable, "-m", "launch.cli", "generate", *overrides, "--run-dir", str(run_dir)],
                             capture_output=True, text=True, timeout=600, env=env)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    entries = Manifest(run_dir / "data").entries
    assert len({e["node_id"] for e in entries.values()}) == 2  # tasks ran on both raylets
    assert (run_dir / "data" / "teacher_cache.sqlite").exists()  # written by the cache actor (auto -> actor)
    cfg = load_config(run_dir / "config.resolved.yaml", [], RunConfig)
    seeds = make_env(cfg.task).train_seeds(EPISODES)
    assert_same_records(run_dir / "data", reference_records(run_dir / "function_base.json", seeds, per_task=2))
