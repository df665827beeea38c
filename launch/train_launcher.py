"""Launch `training.train` on one node or many: `accelerate launch` (default) or `torchrun`.

`build_launch_command` is pure (tests check it); `run_training` runs it as a subprocess, streams its
output and returns the exported checkpoint (the pipeline's `train` stage). As a program it starts
this node's share of a run, with the topology given on the command line (the shell launchers in
`launch/` map NNODES / NODE_RANK / MASTER_ADDR or SLURM's variables onto these flags):

    python -m launch.train_launcher --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --nproc-per-node 8 \
        [--launcher torchrun] [--dry-run] -- --config RUN/config.resolved.yaml --data RUN/data/ld-00000.parquet \
        --student RUN/students/init --out RUN/students/ld --run-dir RUN --job train_ld

It builds, for node 0 of a CPU run, exactly:

    python -m accelerate.commands.launch --config_file configs/accelerate/cpu.yaml \
        --deepspeed_config_file configs/deepspeed/zero2.json --num_processes 2 --num_machines 2 \
        --machine_rank 0 --main_process_port 29500 --mixed_precision no --main_process_ip 10.0.0.1 \
        --deepspeed_multinode_launcher standard --module training.train --config ... --job train_ld
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from configs.training_schema import TrainingConfig, resolve_accelerate_config, resolve_deepspeed_config

LAUNCHERS = ("accelerate", "torchrun")

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


def _accelerate_yaml(accelerate_yaml: Path) -> dict:
    return yaml.safe_load(accelerate_yaml.read_text()) or {}


def _uses_deepspeed(accelerate_yaml: Path) -> bool:
    return str(_accelerate_yaml(accelerate_yaml).get("distributed_type", "")).upper() == "DEEPSPEED"


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


def training_argv(config_path, data, student_dir, out_dir, run_dir, job: str, resume: str | None = None) -> list[str]:
    """The arguments of `training.train` itself."""
    data_items = [data] if isinstance(data, (str, Path)) else list(data)
    if not data_items:
        raise ValueError("build_launch_command: no training data given")
    argv = ["--config", str(config_path), "--data", *map(str, data_items), "--student", str(student_dir),
            "--out", str(out_dir), "--run-dir", str(run_dir), "--job", job]
    return argv + (["--resume", resume] if resume else [])


def build_launch_command(config_path: str | Path, data: Sequence[str | Path] | str | Path,
                         student_dir: str | Path, out_dir: str | Path, run_dir: str | Path, job: str,
                         training_cfg: TrainingConfig, *, cuda_available: bool, port: int | None = None,
                         base_env: Mapping[str, str] | None = None, cpu_count: int | None = None,
                         launcher: str = "accelerate", resume: str | None = None) -> LaunchCommand:
    """This node's `accelerate launch ...` (or `torchrun ...`) command for `training.train`, and its
    environment (pure). Topology comes from the training section (num_machines, machine_rank, ...)."""
    cfg = training_cfg
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    accelerate_yaml = resolve_accelerate_config(cfg, cuda_available)
    deepspeed = _uses_deepspeed(accelerate_yaml)
    port = cfg.main_process_port or port
    if port is None:
        raise ValueError("build_launch_command: no main process port (set training.main_process_port or pass port)")
    train_args = training_argv(config_path, data, student_dir, out_dir, run_dir, job, resume)
    env = launch_environment(cfg, cuda_available, deepspeed, os.environ if base_env is None else base_env,
                             cpu_count or os.cpu_count() or 1)
    if launcher == "torchrun":
        return _torchrun_command(cfg, accelerate_yaml, deepspeed, port, train_args, env)
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_yaml)]
    if deepspeed:
        argv += ["--deepspeed_config_file", str(resolve_deepspeed_config(cfg))]
    argv += ["--num_processes", str(cfg.num_processes), "--num_machines", str(cfg.num_machines),
             "--machine_rank", str(cfg.machine_rank), "--main_process_port", str(port),
             "--mixed_precision", cfg.mixed_precision]
    if cfg.main_process_ip:
        argv += ["--main_process_ip", cfg.main_process_ip]
    if cfg.num_machines > 1 and deepspeed:
        # The default (pdsh) launcher silently runs world size 1 and exits 0; `standard` is torchrun-based.
        argv += ["--deepspeed_multinode_launcher", "standard"]
    argv += ["--module", "training.train", *train_args]
    return LaunchCommand(argv=argv, env=env, cwd=REPO_ROOT)


def _torchrun_command(cfg: TrainingConfig, accelerate_yaml: Path, deepspeed: bool, port: int,
                      train_args: list[str], env: dict[str, str]) -> LaunchCommand:
    """`torchrun` starts the processes; the variables `accelerate launch` would set tell the
    Accelerator inside `training.train` to use DeepSpeed with the run's JSON."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(cfg.num_machines),
            "--node_rank", str(cfg.machine_rank), "--nproc_per_node", str(cfg.num_processes // cfg.num_machines),
            "--master_addr", cfg.main_process_ip or "127.0.0.1", "--master_port", str(port),
            "-m", "training.train", *train_args]
    env = {**env, "ACCELERATE_MIXED_PRECISION": cfg.mixed_precision}
    if deepspeed:
        zero3_init = (_accelerate_yaml(accelerate_yaml).get("deepspeed_config") or {}).get("zero3_init_flag", False)
        env.update({"ACCELERATE_USE_DEEPSPEED": "true",
                    "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(resolve_deepspeed_config(cfg)),
                    "ACCELERATE_DEEPSPEED_ZERO3_INIT": str(bool(zero3_init)).lower()})
    return LaunchCommand(argv=argv, env=env, cwd=REPO_ROOT)


def launch_deepspeed_json(command: LaunchCommand) -> Path | None:
    """The DeepSpeed JSON a built command passes to `accelerate launch` (None without DeepSpeed)."""
    if "--deepspeed_config_file" in command.argv:
        return Path(command.argv[command.argv.index("--deepspeed_config_file") + 1])
    if command.env.get("ACCELERATE_USE_DEEPSPEED") == "true":
        return Path(command.env["ACCELERATE_DEEPSPEED_CONFIG_FILE"])
    return None


def stream_process(command: LaunchCommand, log_path: Path, echo: bool = True) -> tuple[int, list[str]]:
    """Run the command, copying its merged stdout/stderr to `log_path` (and our stdout); return (rc, tail)."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log, subprocess.Popen(
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

    Start-up checks run first (training/preflight.py, PreflightError). Re-running after a kill
    resumes from the newest checkpoint (training.resume=auto). The full log goes to
    `<run_dir>/logs/<job>.log` (appended to, so a resumed job keeps the killed run's lines);
    a failure raises TrainingFailed with its tail.
    """
    import torch

    from training.preflight import run_preflight

    out_dir, run_dir = Path(out_dir).resolve(), Path(run_dir).resolve()
    command = build_launch_command(
        Path(config_path).resolve(), data, Path(student_dir).resolve(), out_dir, run_dir, job, training_cfg,
        cuda_available=torch.cuda.is_available(), port=_default_port(training_cfg))
    # One clear error here instead of a traceback from every rank after the processes started.
    run_preflight(training_cfg, Path(student_dir), launch_deepspeed_json(command), training_cfg.num_processes)
    log_path = run_dir / "logs" / f"{job}.log"
    rc, tail = stream_process(command, log_path, echo=echo)
    if rc != 0:
        raise TrainingFailed(f"training job {job!r} failed with exit code {rc}; full log: {log_path}\n"
                             f"--- last {len(tail)} lines ---\n" + "\n".join(tail))
    if not (out_dir / "config.json").is_file():
        raise TrainingFailed(f"training job {job!r} exited 0 but wrote no checkpoint to {out_dir}; log: {log_path}")
    return out_dir


def with_topology(cfg: TrainingConfig, nnodes: int | None = None, node_rank: int | None = None,
                  master_addr: str | None = None, master_port: int | None = None,
                  nproc_per_node: int | None = None) -> TrainingConfig:
    """The training section with this node's place in the job; unset flags keep the config's values."""
    updates: dict = {}
    if nnodes is not None:
        updates["num_machines"] = nnodes
    if node_rank is not None:
        updates["machine_rank"] = node_rank
    if master_addr:
        updates["main_process_ip"] = master_addr
    if master_port is not None:
        updates["main_process_port"] = master_port
    if nproc_per_node is not None:
        updates["num_processes"] = nproc_per_node * updates.get("num_machines", cfg.num_machines)
    # exclude_unset keeps "was this set explicitly" intact for the cross-field checks.
    return TrainingConfig.model_validate({**cfg.model_dump(exclude_unset=True), **updates})


def parse_node_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m launch.train_launcher",
        description="Start this node's share of a training run. Arguments after `--` go to training.train.")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="accelerate")
    parser.add_argument("--nnodes", type=int, help="machines in the job (training.num_machines)")
    parser.add_argument("--node-rank", type=int, help="this machine's rank, 0..nnodes-1")
    parser.add_argument("--master-addr", help="address of the rank-0 machine")
    parser.add_argument("--master-port", type=int, help="rendezvous port (default 29500 on several nodes)")
    parser.add_argument("--nproc-per-node", type=int, help="processes on each machine (GPUs per node)")
    parser.add_argument("--dry-run", action="store_true", help="print the command and its key variables, run nothing")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:split]), argv[split + 1:]


def main(argv: list[str] | None = None) -> None:
    import torch

    from training.preflight import run_preflight
    from training.train import load_run_config
    from training.train import parse_args as parse_training_args

    args, rest = parse_node_args(argv)
    train = parse_training_args(rest)
    cfg = with_topology(load_run_config(train.config).training, args.nnodes, args.node_rank, args.master_addr,
                        args.master_port, args.nproc_per_node)
    absolute = lambda path: str(Path(path).expanduser().resolve())  # noqa: E731  (the launch runs in the repo root)
    resume = train.resume if train.resume in (None, "auto", "never") else absolute(train.resume)
    command = build_launch_command(absolute(train.config), [absolute(d) for d in train.data], absolute(train.student),
                                   absolute(train.out), absolute(train.run_dir), train.job, cfg, cuda_available=torch.cuda.is_available(), port=_default_port(cfg),
                                   launcher=args.launcher, resume=resume)
    shown = {k: v for k, v in command.env.items() if k.startswith(("ACCELERATE_", "OMP_NUM_THREADS"))}
    print(" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(shown.items())), shlex.join(command.argv), flush=True)
    if args.dry_run:
        return
    run_preflight(cfg, Path(train.student), launch_deepspeed_json(command), cfg.num_processes)
    os.chdir(command.cwd)
    os.execve(command.argv[0], command.argv, command.env)  # the launcher takes this process's place (and signals)


if __name__ == "__main__":
    main()
