"""The shipped launchers build the right command: node scripts, SLURM template, torchrun, Ray Train.

The node/torchrun scripts and the sbatch template run for real in DRY_RUN mode (they print the
command instead of starting it); SLURM's own `scontrol`/`srun` are replaced by tiny scripts that
do what SLURM does for this template (expand the node list, run the task with its SLURM_NODEID).
Real multi-node training through train_multinode.sh and torchrun is in test_training_distributed.py;
the Ray Train entry runs for real here (slow).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs.training_schema import TrainingConfig
from ray_jobs.train_ray import worker_environment
from training.job import job_file, read_job
from training_helpers import write_run_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def train_args(tmp_path):
    config = write_run_config(tmp_path / "run", TrainingConfig(num_processes=2, zero_stage=3))
    return ["--config", str(config), "--data", str(tmp_path / "data"), "--student", str(tmp_path / "s"),
            "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"), "--job", "train_ld"]


def run_script(args, env, cwd=REPO):
    done = subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, "DRY_RUN": "1", **env})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_multinode_script_places_this_node(train_args, tmp_path):
    out = run_script([REPO / "launch/train_multinode.sh", *train_args],
                     {"NNODES": "4", "NODE_RANK": "2", "MASTER_ADDR": "10.1.1.1", "NPROC_PER_NODE": "2"})
    assert "accelerate.commands.launch" in out and "--deepspeed_multinode_launcher standard" in out
    job_path = job_file(tmp_path / "run", "train_ld", machine_rank=2)
    for flag in ("--num_machines 4", "--machine_rank 2", "--main_process_ip 10.1.1.1", "--num_processes 8",
                 "--main_process_port 29500", "zero3.json", "--module training.train", f"--job-file {job_path}"):
        assert flag in out, flag
    # The node's job file, resolved for the whole job: 8 processes, ZeRO-3, absolute paths.
    job = read_job(job_path)
    assert job.training.world_size == 8 and job.training.zero_stage == 3 and job.name == "train_ld"
    assert Path(job.student_dir).is_absolute() and job.training.settings.machine_rank == 2


def test_multinode_script_requires_its_variables(train_args):
    done = subprocess.run(["bash", str(REPO / "launch/train_multinode.sh"), *train_args], capture_output=True,
                          text=True, env={**os.environ, "NNODES": "2"}, timeout=60)
    assert done.returncode != 0 and "NODE_RANK" in done.stderr


def test_torchrun_script(train_args):
    out = run_script([REPO / "launch/train_torchrun.sh", *train_args], {"NPROC_PER_NODE": "4"})
    assert "torch.distributed.run" in out and "--nproc_per_node 4" in out and "--nnodes 1" in out
    assert "resolved: ZeRO-3" in out and "zero3.json" in out and "--job-file" in out


def test_slurm_template_takes_rank_and_master_from_slurm(tmp_path, train_args):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # scontrol show hostnames NODELIST -> one host per line (here the list is already expanded).
    (stubs / "scontrol").write_text('#!/usr/bin/env bash\n[ "$1 $2" = "show hostnames" ] && tr "," "\\n" <<< "$3"\n')
    # srun runs the command once per node, as SLURM would, with that node's SLURM_NODEID.
    (stubs / "srun").write_text('#!/usr/bin/env bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
                                'for id in 0 1; do SLURM_NODEID=$id "$@"; done\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    out = run_script([REPO / "launch/slurm_train.sbatch", *train_args],
                     {"PATH": f"{stubs}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-a17,gpu-b03",
                      "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "1", "SLURM_SUBMIT_DIR": str(REPO)})
    commands = [line for line in out.splitlines() if "accelerate.commands.launch" in line]
    assert len(commands) == 2
    for rank, command in enumerate(commands):
        assert f"--machine_rank {rank}" in command and "--main_process_ip gpu-a17" in command
        assert "--num_machines 2" in command and "--num_processes 2" in command


def test_ray_train_worker_environment():
    env = worker_environment(use_gpu=False, cpus_per_worker=2)
    assert env["OMP_NUM_THREADS"] == "2" and env["HF_HUB_OFFLINE"] == "1"
    assert not [k for k in env if k.startswith("ACCELERATE_")]  # DeepSpeed and precision travel in the job file


@pytest.mark.slow
def test_ray_train_runs_the_same_loop(tmp_path):
    """Two Ray Train workers (gloo) with ZeRO-2 give a 1-process run's losses (~1 min: a local Ray starts)."""
    from generation.storage.tracking import read_side_log
    from training_helpers import make_student_and_data, step_losses, train_in_process

    student, data, _ = make_student_and_data(tmp_path)
    common = dict(max_steps=4, log_every=1, learning_rate=3e-3, seed=1, save_every=None)
    reference = step_losses(train_in_process(tmp_path / "ref", student, data, per_device_batch_size=8,
                                             gradient_accumulation_steps=2, **common))
    training = TrainingConfig(num_processes=2, zero_stage=2, per_device_batch_size=8, **common)
    config = write_run_config(tmp_path / "ray", training)
    done = subprocess.run([sys.executable, "-m", "ray_jobs.train_ray", "--", "--config", str(config), "--data",
                           str(data), "--student", str(student), "--out", str(tmp_path / "ray" / "out"),
                           "--run-dir", str(tmp_path / "ray"), "--job", "train"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    losses = step_losses(read_side_log(tmp_path / "ray", "train"))
    assert list(losses.values()) == pytest.approx(list(reference.values()), rel=1e-5)
    assert (tmp_path / "ray" / "out" / "config.json").is_file()
