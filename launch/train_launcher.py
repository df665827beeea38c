"""Run `training.train` under `accelerate launch` as a subprocess: one node or many, CPU or GPU.

`build_launch_command` is pure (tests check it); `run_training` runs it, streams its output, and
returns the exported checkpoint. The command it builds is the one to paste on each node by hand:

    python -m accelerate.commands.launch --config_file configs/accelerate/cpu.yaml \
        --deepspeed_config_file configs/deepspeed/zero2.json --num_processes 2 --num_machines 1 \
        --machine_rank 0 --main_process_port 40123 --mixed_precision no \
        --module training.train --config RUN/config.resolved.yaml --data RUN/data --student S \
        --out OUT --run-dir RUN --job train_ld
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from configs.training_schema import TrainingConfig, resolve_accelerate_config, resolve_deepspeed_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXTENSIONS_CACHE = Path("~/.cache/logic-distill/torch_extensions").expanduser()
TAIL_LINES = 80


class TrainingFailed(RuntimeError):
    """The training subprocess exited non-zero; the message carries the tail of its log."""


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_port(cfg: TrainingConfig) -> int:
    """A free local port on one node; across nodes every launcher must agree, so the torch default."""
    return free_port() if cfg.num_machines == 1 else 29500


def _uses_deepspeed(accelerate_yaml: Path) -> bool:
    raw = yaml.safe_load(accelerate_yaml.read_text()) or {}
    return str(raw.get("distributed_type", "")).upper() == "DEEPSPEED"


def launch_environment(cfg: TrainingConfig, cuda_available: bool, deepspeed: bool,
                       base_env: Mapping[str, str], cpu_count: int) -> dict[str, str]:
    """The subprocess environment: offline hub, a persistent extension cache, sane CPU threading."""
    env = dict(base_env)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
                "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    # DeepSpeed JIT-builds its CPU comm op at first init; a persistent cache makes that a one-off.
    env.setdefault("TORCH_EXTENSIONS_DIR", str(DEFAULT_EXTENSIONS_CACHE))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), base_env.get("PYTHONPATH", "")) if p)
    if not cuda_available:
        local_processes = cfg.num_processes // cfg.num_machines
        # One thread per process when several share the cores; oversubscription is much slower.
        env.setdefault("OMP_NUM_THREADS", str(max(1, cpu_count // local_processes)))
        if not deepspeed:
            # Without this, accelerate on a CUDA-less machine silently trains every rank alone.
            env["ACCELERATE_USE_CPU"] = "true"
    return env


def build_launch_command(config_path: str | Path, data: Sequence[str | Path] | str | Path,
                         student_dir: str | Path, out_dir: str | Path, run_dir: str | Path, job: str,
                         training_cfg: TrainingConfig, *, cuda_available: bool, port: int | None = None,
                         base_env: Mapping[str, str] | None = None, cpu_count: int | None = None) -> LaunchCommand:
    """The `accelerate launch ... --module training.train ...` command and its environment (pure)."""
    cfg = training_cfg
    accelerate_yaml = resolve_accelerate_config(cfg, cuda_available)
    deepspeed = _uses_deepspeed(accelerate_yaml)
    port = cfg.main_process_port or port
    if port is None:
        raise ValueError("build_launch_command: no main process port (set training.main_process_port or pass port)")
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_yaml)]
    if deepspeed:
        argv += ["--deepspeed_config_file", str(resolve_deepspeed_config(cfg))]
    argv += ["--num_processes", str(cfg.num_processes), "--num_machines", str(cfg.num_machines),
             "--machine_rank", str(cfg.machine_rank), "--main_process_port", str(port),
             "--mixed_precision", cfg.mixed_precision]
    if cfg.main_process_ip:
        argv += ["--main_process_ip", cfg.main_process_ip]
    data_items = [data] if isinstance(data, (str, Path)) else list(data)
    if not data_items:
        raise ValueError("build_launch_command: no training data given")
    argv += ["--module", "training.train", "--config", str(config_path), "--data", *map(str, data_items),
             "--student", str(student_dir), "--out", str(out_dir), "--run-dir", str(run_dir), "--job", job]
    env = launch_environment(cfg, cuda_available, deepspeed, os.environ if base_env is None else base_env,
                             cpu_count or os.cpu_count() or 1)
    return LaunchCommand(argv=argv, env=env, cwd=REPO_ROOT)


def stream_process(command: LaunchCommand, log_path: Path, echo: bool = True) -> tuple[int, list[str]]:
    """Run the command, copying its merged stdout/stderr to `log_path` (and our stdout); return (rc, tail)."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log, subprocess.Popen(
        command.argv, env=command.env, cwd=command.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
        rc = proc.wait()
    return rc, list(tail)


def run_training(config_path: str | Path, data: Sequence[str | Path] | str | Path, student_dir: str | Path,
                 out_dir: str | Path, run_dir: str | Path, job: str, training_cfg: TrainingConfig,
                 echo: bool = True) -> Path:
    """Train with `accelerate launch`; return the exported HF checkpoint directory.

    The full log goes to `<run_dir>/logs/<job>.log`; a failure raises TrainingFailed with its tail.
    """
    import torch

    out_dir, run_dir = Path(out_dir).resolve(), Path(run_dir).resolve()
    command = build_launch_command(
        Path(config_path).resolve(), data, Path(student_dir).resolve(), out_dir, run_dir, job, training_cfg,
        cuda_available=torch.cuda.is_available(), port=_default_port(training_cfg))
    log_path = run_dir / "logs" / f"{job}.log"
    rc, tail = stream_process(command, log_path, echo=echo)
    if rc != 0:
        raise TrainingFailed(f"training job {job!r} failed with exit code {rc}; full log: {log_path}\n"
                             f"--- last {len(tail)} lines ---\n" + "\n".join(tail))
    if not (out_dir / "config.json").is_file():
        raise TrainingFailed(f"training job {job!r} exited 0 but wrote no checkpoint to {out_dir}; log: {log_path}")
    return out_dir
