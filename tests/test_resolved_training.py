"""The training config is resolved once, by the launcher, into one object that the processes only read.

One key says one thing: the ZeRO stage is `zero_stage` (an override `deepspeed_config` must agree),
the batch is `global_batch_size` or `gradient_accumulation_steps` (both given: they must agree).
"""

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from configs.loader import ConfigError
from configs.resolved_training import resolve_training
from configs.training_schema import CONFIGS_DIR, TrainingConfig
from generation.storage.tracking import WandbConfig
from training.job import RunConfig, read_job, resolve_job, write_job
from training_helpers import STUDENT, write_run_config


def run_config(**training) -> RunConfig:
    return RunConfig(student=STUDENT, training=TrainingConfig(**training), wandb=WandbConfig(mode="disabled"))


def test_resolving_gives_one_concrete_frozen_object():
    cfg = TrainingConfig(num_processes=4, zero_stage=3, per_device_batch_size=2, global_batch_size=32)
    resolved = resolve_training(cfg, deepspeed=True)
    assert resolved == resolve_training(cfg, deepspeed=True)  # a pure function of the config
    assert (resolved.world_size, resolved.accumulation, resolved.rows_per_step) == (4, 4, 32)
    assert resolved.zero_stage == 3 and resolved.deepspeed["zero_optimization"]["stage"] == 3
    assert resolved.deepspeed["train_micro_batch_size_per_gpu"] == 2  # filled once, here
    assert resolved.deepspeed_source.endswith("configs/deepspeed/zero3.json")
    with pytest.raises(ValidationError, match="frozen"):
        resolved.accumulation = 1
    # Without DeepSpeed no file is read and no stage is claimed.
    plain = resolve_training(cfg, deepspeed=False, world_size=1)
    assert (plain.zero_stage, plain.deepspeed, plain.accumulation) == (None, None, 16)


def test_zero_stage_is_the_one_key_for_the_stage(tmp_path):
    offload = resolve_training(TrainingConfig(zero_stage=3, deepspeed_config="zero3_offload"), deepspeed=True)
    assert offload.zero_stage == 3 and offload.deepspeed_source.endswith("zero3_offload.json")
    with pytest.raises(ConfigError, match=r"training.deepspeed_config='zero3_offload'.*stage 3 but "
                                          r"training.zero_stage is 2 \(the default\).*set training.zero_stage: 3"):
        resolve_training(TrainingConfig(deepspeed_config="zero3_offload"), deepspeed=True)
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    with pytest.raises(ConfigError, match=r"training.deepspeed_config=.*own.json.*stage 1 but training.zero_stage is 2"):
        resolve_training(TrainingConfig(zero_stage=2, deepspeed_config=str(own)), deepspeed=True)
    assert resolve_training(TrainingConfig(zero_stage=1, deepspeed_config=str(own)), deepspeed=True).zero_stage == 1
    own.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_training(TrainingConfig(zero_stage=1, deepspeed_config=str(own)), deepspeed=True)


def test_batch_said_twice_must_agree():
    with pytest.raises(ValidationError, match=r"training.gradient_accumulation_steps=2 conflicts with "
                                              r"training.global_batch_size=32.*= 8; set only one"):
        TrainingConfig(per_device_batch_size=4, global_batch_size=32, gradient_accumulation_steps=2)
    agree = TrainingConfig(num_processes=2, per_device_batch_size=4, global_batch_size=32, gradient_accumulation_steps=4)
    assert resolve_training(agree, deepspeed=False).accumulation == 4
    assert resolve_training(TrainingConfig(), deepspeed=False).accumulation == 1  # neither said: 1


@pytest.mark.parametrize("path", sorted(CONFIGS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path):
    training = TrainingConfig.model_validate((yaml.safe_load(path.read_text()) or {}).get("training") or {})
    assert resolve_training(training, deepspeed=True).zero_stage == training.zero_stage


def test_the_process_entry_reads_the_job_file_and_resolves_nothing(tmp_path, monkeypatch):
    import training.train as train

    job = resolve_job(run_config(num_processes=2, zero_stage=3, global_batch_size=64), [tmp_path / "data"],
                      tmp_path / "student", tmp_path / "out", tmp_path / "run", "train_ld", deepspeed=True,
                      resume="never")
    path = write_job(job)
    assert path == tmp_path / "run" / "jobs" / "train_ld.json" and read_job(path) == job
    ran = []
    monkeypatch.setattr(train, "run", ran.append)
    for name in ("resolve_job", "prepare_job"):  # a process that resolved or checked again would call these
        monkeypatch.setattr(train, name, lambda *a, **k: pytest.fail("the process resolved the job again"))
    train.main(["--job-file", str(path)])
    assert ran == [job] and ran[0].training.settings.resume == "never"
    with pytest.raises(SystemExit):  # the old YAML-and-overrides arguments are gone
        train.parse_args(["--config", "c.yaml", "--data", "d", "--student", "s", "--out", "o", "--run-dir", "r"])


def test_run_training_resolves_and_checks_once_then_passes_only_the_path(tmp_path, monkeypatch):
    import configs.resolved_training
    import launch.train_launcher as launcher
    import training.job
    import training.preflight

    calls = {"resolve": 0, "preflight": 0}
    real_resolve = configs.resolved_training.resolve_training

    def counting_resolve(*args, **kwargs):
        calls["resolve"] += 1
        return real_resolve(*args, **kwargs)

    def fake_preflight(resolved, student_dir):
        calls["preflight"] += 1

    def fake_stream(command, log_path, echo=True):
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "config.json").write_text("{}")
        fake_stream.argv = command.argv
        return 0, []

    monkeypatch.setattr(training.job, "resolve_training", counting_resolve)
    monkeypatch.setattr(training.preflight, "run_preflight", fake_preflight)
    monkeypatch.setattr(launcher, "stream_process", fake_stream)
    config = write_run_config(tmp_path / "run", TrainingConfig(num_processes=2, zero_stage=3))
    launcher.run_training(config, [tmp_path / "data"], tmp_path / "s", tmp_path / "out", tmp_path / "run", "j",
                          echo=False)
    assert calls == {"resolve": 1, "preflight": 1}
    module = fake_stream.argv.index("training.train")
    job_path = Path(fake_stream.argv[module + 2])
    assert fake_stream.argv[module + 1:] == ["--job-file", str(job_path)]
    assert read_job(job_path).training.zero_stage == 3
