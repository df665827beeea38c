"""Train a student on a Ray cluster with Ray Train's `TorchTrainer`: the same loop, DeepSpeed JSON and resume.

Ray starts one worker per process (GPU), sets up the process group (NCCL on GPUs, gloo on CPU) and
RANK / LOCAL_RANK / WORLD_SIZE. This driver is the launcher: it resolves the job once for
`num_workers` processes (always DeepSpeed; ZeRO-3 partitions at load on GPUs), checks it, writes
`<run-dir>/jobs/<job>.json`, and each worker runs `training.train` on that file.

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

from training.job import add_job_arguments, prepare_job, read_run_config, resolve_job

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTENSIONS_CACHE = Path("~/.cache/logic-distill/torch_extensions").expanduser()


def worker_environment(use_gpu: bool, cpus_per_worker: int) -> dict[str, str]:
    """The process environment of every worker (pure); DeepSpeed and precision come in the job file."""
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "TORCH_EXTENSIONS_DIR": str(EXTENSIONS_CACHE)}
    if not use_gpu:
        env["OMP_NUM_THREADS"] = str(max(1, cpus_per_worker))
    return env


def train_worker(loop_config: dict) -> None:
    """Body of every Ray Train worker: set the environment, then run the one training loop on the job file."""
    os.environ.update(loop_config["env"])
    if "OMP_NUM_THREADS" in loop_config["env"]:  # the worker process started before we could set it
        import torch

        torch.set_num_threads(int(loop_config["env"]["OMP_NUM_THREADS"]))
    from training.train import main

    main(["--job-file", loop_config["job_file"]])


def start_ray(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))}
        env.update({k: v for k, v in os.environ.items() if k.startswith(("WANDB_", "HF_"))})
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=True,
                 configure_logging=False)


def run_ray_training(job_args: argparse.Namespace, num_workers: int | None = None, address: str | None = None,
                     cpus_per_worker: int = 1, use_gpu: bool | None = None):
    """Resolve, check and write the job for `num_workers` Ray Train workers (default training.num_processes),
    then run `training.train` on its file in every worker."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    run_cfg = read_run_config(job_args.config)
    start_ray(address)
    if use_gpu is None:
        use_gpu = bool(ray.cluster_resources().get("GPU"))
    workers = num_workers or run_cfg.training.num_processes
    training_job = resolve_job(run_cfg, job_args.data, job_args.student, job_args.out, job_args.run_dir,
                               job_args.job, deepspeed=True, zero3_init=use_gpu, world_size=workers,
                               resume=job_args.resume)
    job_path = prepare_job(training_job)
    print(f"resolved: {training_job.training.describe()} -> {job_path}", flush=True)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"env": worker_environment(use_gpu, cpus_per_worker), "job_file": str(job_path)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=training_job.name, storage_path=str(Path(training_job.run_dir) / "ray_train")),
    )
    return trainer.fit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs.train_ray",
                                     description="Ray Train entry; arguments after `--` describe the job")
    parser.add_argument("--address", default=None, help="Ray address (auto = the running cluster; none = start one)")
    parser.add_argument("--num-workers", type=int, default=None, help="default: training.num_processes")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    job_args = add_job_arguments(argparse.ArgumentParser(prog="python -m ray_jobs.train_ray ... --"))
    run_ray_training(job_args.parse_args(argv[split + 1:]), args.num_workers, args.address, args.cpus_per_worker)


if __name__ == "__main__":
    main()
