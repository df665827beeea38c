"""Train a student on a Ray cluster with Ray Train's `TorchTrainer`: the same loop, DeepSpeed JSON and resume.

Ray starts one worker per process (GPU), sets up the process group (NCCL on GPUs, gloo on CPU) and
RANK / LOCAL_RANK / WORLD_SIZE; each worker then runs `training.train` with the variables that
`accelerate launch` would set, so the Accelerator inside uses DeepSpeed with the run's JSON.

    python -m ray_jobs.train_ray [--address auto] [--num-workers 16] -- --config runs/exp1/config.resolved.yaml \\
        --data runs/exp1/data --student runs/exp1/students/init --out runs/exp1/students/ld \\
        --run-dir runs/exp1 --job train_ld

or, on a running cluster, through `ray job submit --working-dir . -- python -m ray_jobs.train_ray ...`
(see README "Training at scale"). Paths must be visible to every node (shared filesystem).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from configs.training_schema import TrainingConfig, resolve_deepspeed_config

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTENSIONS_CACHE = Path("~/.cache/logic-distill/torch_extensions").expanduser()


def worker_environment(cfg: TrainingConfig, use_gpu: bool, cpus_per_worker: int) -> dict[str, str]:
    """What `accelerate launch` would have put in each process's environment (pure)."""
    env = {"ACCELERATE_USE_DEEPSPEED": "true",
           "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(resolve_deepspeed_config(cfg)),
           "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true" if use_gpu else "false",
           "ACCELERATE_MIXED_PRECISION": cfg.mixed_precision,
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "TORCH_EXTENSIONS_DIR": str(EXTENSIONS_CACHE)}
    if not use_gpu:
        env["OMP_NUM_THREADS"] = str(max(1, cpus_per_worker))
    return env


def absolute_training_argv(parsed: argparse.Namespace) -> list[str]:
    """training.train's arguments with absolute paths: Ray workers do not run in the caller's directory."""
    absolute = lambda path: str(Path(path).expanduser().resolve())  # noqa: E731
    argv = ["--config", absolute(parsed.config), "--data", *map(absolute, parsed.data),
            "--student", absolute(parsed.student), "--out", absolute(parsed.out),
            "--run-dir", absolute(parsed.run_dir), "--job", parsed.job]
    if parsed.resume:
        argv += ["--resume", parsed.resume if parsed.resume in ("auto", "never") else absolute(parsed.resume)]
    return argv


def train_worker(loop_config: dict) -> None:
    """Body of every Ray Train worker: set the launch variables, then run the one training loop."""
    os.environ.update(loop_config["env"])
    if "OMP_NUM_THREADS" in loop_config["env"]:  # the worker process started before we could set it
        import torch

        torch.set_num_threads(int(loop_config["env"]["OMP_NUM_THREADS"]))
    from training.train import main

    main(loop_config["argv"])


def run_ray_training(train_argv: list[str], cfg: TrainingConfig, num_workers: int | None = None,
                     address: str | None = None, cpus_per_worker: int = 1, use_gpu: bool | None = None):
    """Run `training.train <train_argv>` on `num_workers` Ray Train workers (default training.num_processes)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from training.train import parse_args

    parsed = parse_args(train_argv)
    if not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))}
        env.update({k: v for k, v in os.environ.items() if k.startswith(("WANDB_", "HF_"))})
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=True,
                 configure_logging=False)
    if use_gpu is None:
        use_gpu = bool(ray.cluster_resources().get("GPU"))
    workers = num_workers or cfg.num_processes
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"env": worker_environment(cfg, use_gpu, cpus_per_worker), "argv": train_argv},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=parsed.job, storage_path=str(Path(parsed.run_dir).resolve() / "ray_train")),
    )
    return trainer.fit()


def main(argv: list[str] | None = None) -> None:
    from training.preflight import run_preflight
    from training.train import load_run_config, parse_args

    parser = argparse.ArgumentParser(prog="python -m ray_jobs.train_ray",
                                     description="Ray Train entry; arguments after `--` go to training.train")
    parser.add_argument("--address", default=None, help="Ray address (auto = the running cluster; none = start one)")
    parser.add_argument("--num-workers", type=int, default=None, help="default: training.num_processes")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, train_argv = parser.parse_args(argv[:split]), argv[split + 1:]
    parsed = parse_args(train_argv)
    train_argv = absolute_training_argv(parsed)
    cfg = load_run_config(parsed.config).training
    workers = args.num_workers or cfg.num_processes
    run_preflight(cfg, Path(parsed.student), resolve_deepspeed_config(cfg), workers)
    run_ray_training(train_argv, cfg, workers, args.address, args.cpus_per_worker)


if __name__ == "__main__":
    main()
