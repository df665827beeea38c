"""Launch `training.train` on one node or many: `accelerate launch` (default) or `torchrun`.

The launcher is where a training config is resolved, once: `plan_launch` reads the Accelerate
config (does this launch run DeepSpeed?) and resolves the job (training/job.py: ZeRO stage, the
DeepSpeed JSON, micro-batch, accumulation, world size); `prepare_job` checks it and writes it to
`<run-dir>/jobs/<job>.json`; the processes get only that path. `build_launch_command` is pure (tests
check it); `run_training` runs it as a subprocess, streams its output and returns the exported
checkpoint (the pipeline's `train` stage). As a program it starts this node's share of a run, with
the topology given on the command line (the shell launchers in `launch/` map NNODES / NODE_RANK /
MASTER_ADDR or SLURM's variables onto these flags):

    python -m launch.train_launcher --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --nproc-per-node 8 \
        [--launcher torchrun] [--dry-run] -- --config RUN/config.resolved.yaml --data RUN/data/ld-00000.parquet \
        --student RUN/students/init --out RUN/students/ld --run-dir RUN --job train_ld

It builds, for node 0 of a CPU run, exactly:

    python -m accelerate.commands.launch --config_file configs/accelerate/cpu.yaml \
        --deepspeed_config_file configs/deepspeed/zero2.json --num_processes 2 --num_machines 2 \
        --machine_rank 0 --main_process_port 29500 --mixed_precision no --main_process_ip 10.0.0.1 \
        --deepspeed_multinode_launcher standard --module training.train --job-file RUN/jobs/train_ld.json
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

from configs.training_schema import TrainingConfig, resolve_accelerate_config
from training.job import RunConfig, TrainingJob, add_job_arguments, prepare_job, read_run_config, resolve_job

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


def plan_launch(run_cfg: RunConfig, data, student_dir, out_dir, run_dir, job: str, *, cuda_available: bool,
                resume: str | None = None) -> tuple[TrainingJob, Path]:
    """(the job resolved for this launch, the Accelerate config that launches it). The Accelerate
    config decides whether DeepSpeed runs and whether ZeRO-3 partitions at load; both go into the job."""
    accelerate_yaml = resolve_accelerate_config(run_cfg.training, cuda_available)
    settings = _accelerate_yaml(accelerate_yaml)
    deepspeed = str(settings.get("distributed_type", "")).upper() == "DEEPSPEED"
    zero3_init = bool((settings.get("deepspeed_config") or {}).get("zero3_init_flag", False))
    training_job = resolve_job(run_cfg, data, student_dir, out_dir, run_dir, job, deepspeed=deepspeed,
                               zero3_init=zero3_init, resume=resume)
    return training_job, accelerate_yaml


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


def build_launch_command(training_job: TrainingJob, job_path: str | Path, accelerate_yaml: Path, *,
                         cuda_available: bool, port: int | None = None, base_env: Mapping[str, str] | None = None,
                         cpu_count: int | None = None, launcher: str = "accelerate") -> LaunchCommand:
    """This node's `accelerate launch ...` (or `torchrun ...`) command for `training.train --job-file`,
    and its environment (pure). Topology comes from the training section (num_machines, machine_rank, ...)."""
    cfg, deepspeed = training_job.training.settings, training_job.training.deepspeed is not None
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    port = cfg.main_process_port or port
    if port is None:
        raise ValueError("build_launch_command: no main process port (set training.main_process_port or pass port)")
    train_args = ["--job-file", str(job_path)]
    env = launch_environment(cfg, cuda_available, deepspeed, os.environ if base_env is None else base_env,
                             cpu_count or os.cpu_count() or 1)
    if launcher == "torchrun":
        return _torchrun_command(cfg, port, train_args, env)
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_yaml)]
    if deepspeed:
        # For `accelerate launch` itself (a DEEPSPEED config wants a file); the processes build their
        # engine from the job's copy of this JSON, not from the file.
        argv += ["--deepspeed_config_file", str(training_job.training.deepspeed_source)]
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


def _torchrun_command(cfg: TrainingConfig, port: int, train_args: list[str], env: dict[str, str]) -> LaunchCommand:
    """`torchrun` starts the processes; DeepSpeed, its JSON and the precision reach the Accelerator
    through the job file, so no ACCELERATE_* variable has to stand in for `accelerate launch`."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(cfg.num_machines),
            "--node_rank", str(cfg.machine_rank), "--nproc_per_node", str(cfg.num_processes // cfg.num_machines),
            "--master_addr", cfg.main_process_ip or "127.0.0.1", "--master_port", str(port),
            "-m", "training.train", *train_args]
    return LaunchCommand(argv=argv, env=env, cwd=REPO_ROOT)


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
                 out_dir: str | Path, run_dir: str | Path, job: str, echo: bool = True) -> Path:
    """Train with `accelerate launch` on the run config at `config_path`; return the exported HF
    checkpoint directory.

    The run config is read and resolved here, once; start-up checks run on the result
    (training/preflight.py, PreflightError) before the job file is written and the processes start.
    Re-running after a kill resumes from the newest checkpoint (training.resume=auto). The full log
    goes to `<run_dir>/logs/<job>.log` (appended to, so a resumed job keeps the killed run's lines);
    a failure raises TrainingFailed with its tail.
    """
    import torch

    cuda = torch.cuda.is_available()
    run_cfg = read_run_config(config_path)
    training_job, accelerate_yaml = plan_launch(run_cfg, data, student_dir, out_dir, run_dir, job,
                                                cuda_available=cuda)
    job_path = prepare_job(training_job)
    command = build_launch_command(training_job, job_path, accelerate_yaml, cuda_available=cuda,
                                   port=_default_port(run_cfg.training))
    out_dir, run_dir = Path(training_job.out_dir), Path(training_job.run_dir)
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


def parse_node_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """(this node's flags, the job's arguments after `--`: --config --data --student --out --run-dir --job)."""
    parser = argparse.ArgumentParser(
        prog="python -m launch.train_launcher",
        description="Start this node's share of a training run. Arguments after `--` describe the job.")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="accelerate")
    parser.add_argument("--nnodes", type=int, help="machines in the job (training.num_machines)")
    parser.add_argument("--node-rank", type=int, help="this machine's rank, 0..nnodes-1")
    parser.add_argument("--master-addr", help="address of the rank-0 machine")
    parser.add_argument("--master-port", type=int, help="rendezvous port (default 29500 on several nodes)")
    parser.add_argument("--nproc-per-node", type=int, help="processes on each machine (GPUs per node)")
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve and write the job file, print the command, start nothing (no start-up checks)")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    job_parser = add_job_arguments(argparse.ArgumentParser(prog="python -m launch.train_launcher ... --"))
    return parser.parse_args(argv[:split]), job_parser.parse_args(argv[split + 1:])


def main(argv: list[str] | None = None) -> None:
    import torch

    args, train = parse_node_args(argv)
    run_cfg = read_run_config(train.config)
    cfg = with_topology(run_cfg.training, args.nnodes, args.node_rank, args.master_addr, args.master_port,
                        args.nproc_per_node)
    cuda = torch.cuda.is_available()
    training_job, accelerate_yaml = plan_launch(run_cfg.model_copy(update={"training": cfg}), train.data,
                                                train.student, train.out, train.run_dir, train.job,
                                                cuda_available=cuda, resume=train.resume)
    job_path = prepare_job(training_job, cfg.machine_rank, check=not args.dry_run)
    command = build_launch_command(training_job, job_path, accelerate_yaml, cuda_available=cuda,
                                   port=_default_port(cfg), launcher=args.launcher)
    shown = {k: v for k, v in command.env.items() if k.startswith(("ACCELERATE_", "OMP_NUM_THREADS"))}
    print(f"resolved: {training_job.training.describe()} -> {job_path}", flush=True)
    print(" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(shown.items())), shlex.join(command.argv), flush=True)
    if args.dry_run:
        return
    os.chdir(command.cwd)
    os.execve(command.argv[0], command.argv, command.env)  # the launcher takes this process's place (and signals)


if __name__ == "__main__":
    main()
