"""The Learn-to-Reason objective in the real training loop: in this interpreter, and as 2-process ZeRO-3
(DeepSpeed on CPU, gloo) matching the 1-process run step by step, both loss terms."""

import subprocess

import pytest

from configs.ltr_schema import LtrLossSettings
from configs.training_schema import TrainingConfig
from generation.storage.tracking import read_side_log
from training_helpers import STUDENT, launched_command, make_student_and_data, write_parquet

COMMON = dict(max_steps=4, log_every=1, learning_rate=3e-3, warmup_ratio=0.1, seed=1, save_every=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny student and LtR rows: every other row has a triplet (positive + negative)."""
    root = tmp_path_factory.mktemp("ltr")
    student, _, rows = make_student_and_data(root, n_rows=64)
    ltr_rows = [{**r, "positive": r["completion"].replace('"call"', '"use"') if i % 2 else None,
                 "negative": '{"call": "wait"}' if i % 2 else None} for i, r in enumerate(rows)]
    data = write_parquet(ltr_rows, root / "ltr" / "rows.parquet")
    return {"root": root, "student": student, "data": data}


def curves(rows):
    return {r["step"]: (r["loss"], r.get("reflection_loss")) for r in rows if "loss" in r}


def train_here(world, name, loss=LtrLossSettings(), **training):
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from generation.storage.tracking import WandbConfig
    from training.job import RunConfig
    from training.train import run_in_process

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(1)
    run_dir = world["root"] / name
    cfg = RunConfig(student=STUDENT, training=TrainingConfig(**training), wandb=WandbConfig(mode="disabled"),
                    ltr_loss=loss)
    run_in_process(cfg, [str(world["data"])], world["student"], run_dir / "out", run_dir, "train")
    return curves(read_side_log(run_dir, "train"))


def test_objective_trains_both_terms_in_process(world):
    steps = train_here(world, "inproc", per_device_batch_size=8, gradient_accumulation_steps=2, **COMMON)
    assert sorted(steps) == [1, 2, 3, 4]
    assert all(reflection is not None and 0.0 <= reflection <= 2.0 for _, reflection in steps.values())
    assert steps[4][0] < steps[1][0]


def test_resume_refuses_a_checkpoint_trained_with_other_ltr_loss_settings(world):
    from training.preflight import PreflightError

    settings = {**COMMON, "max_steps": 1, "save_every": 1, "per_device_batch_size": 8}
    train_here(world, "fingerprint", **settings)
    with pytest.raises(PreflightError, match="ltr_loss"):  # same job, same checkpoints, lambda 0 instead of 0.5
        train_here(world, "fingerprint", loss=LtrLossSettings(reflection_weight=0.0), **settings)


@pytest.mark.slow
def test_two_process_zero3_matches_one_process(world):
    # two steps of 8 rows: enough for the second step to depend on the first one's ZeRO-3 update
    short = {**COMMON, "max_steps": 2}
    reference = train_here(world, "reference", per_device_batch_size=4, gradient_accumulation_steps=2, **short)
    run_dir = world["root"] / "zero3"
    training = TrainingConfig(num_processes=2, zero_stage=3, per_device_batch_size=4, **short)
    cmd = launched_command(run_dir, training, world["student"], world["data"],
                           ltr_loss=LtrLossSettings().model_dump())
    proc = subprocess.run(cmd.argv, env=cmd.env, cwd=cmd.cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    zero3 = curves(read_side_log(run_dir, "train"))
    assert sorted(zero3) == sorted(reference)
    assert all(reflection is not None for _, reflection in reference.values())  # both terms compared
    for step, (loss, reflection) in reference.items():
        assert zero3[step][0] == pytest.approx(loss, rel=1e-5)
        assert zero3[step][1] == pytest.approx(reflection, rel=1e-5, abs=1e-6)
