"""Start-up checks: each bad setup fails before any compute, with an error that names the problem."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from pydantic import ValidationError

from configs.loader import ConfigError
from configs.resolved_training import resolve_training
from configs.training_schema import TrainingConfig, accumulation_steps
from training.preflight import (PreflightError, check_chat_template, check_deepspeed_config, check_vocab,
                                run_preflight)
from training.student_builder import CHAT_TEMPLATE, train_tokenizer
from training_helpers import make_student_and_data


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["the signal is red", "the signal is blue"] * 20, vocab_size=300)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_student_and_data(tmp_path_factory.mktemp("preflight"), n_rows=40)[0]


def test_vocab_mismatch_is_refused(tokenizer):
    check_vocab(tokenizer, len(tokenizer))
    check_vocab(tokenizer, len(tokenizer) + 64)  # padded embedding tables are fine
    with pytest.raises(PreflightError, match="vocab mismatch.*embedding has"):
        check_vocab(tokenizer, len(tokenizer) - 1)


def test_chat_template_without_eos_is_refused(tokenizer):
    check_chat_template(tokenizer)
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = CHAT_TEMPLATE.replace("{{ eos_token }}", "")
        with pytest.raises(PreflightError, match="missing EOS in the chat template"):
            check_chat_template(tokenizer)
        tokenizer.chat_template = None
        with pytest.raises(PreflightError, match="no chat_template"):
            check_chat_template(tokenizer)
    finally:
        tokenizer.chat_template = original


def test_batch_settings_that_do_not_divide():
    with pytest.raises(ValidationError, match="global_batch_size=20 is not divisible"):
        TrainingConfig(num_processes=2, per_device_batch_size=4, global_batch_size=20)
    cfg = TrainingConfig(num_processes=2, per_device_batch_size=4, global_batch_size=32)
    resolved = resolve_training(cfg, deepspeed=False)
    assert (resolved.accumulation, resolved.rows_per_step) == (4, 32)
    assert accumulation_steps(cfg, 1) == 8  # a resume on one process keeps the global batch
    with pytest.raises(ConfigError, match="not divisible"):
        resolve_training(cfg, deepspeed=False, world_size=3)


def test_deepspeed_config_checks():
    cfg = resolve_training(TrainingConfig(num_processes=2, per_device_batch_size=4, gradient_accumulation_steps=2,
                                          mixed_precision="bf16"), deepspeed=False)
    good = {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
            "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 2, "bf16": {"enabled": True}}
    check_deepspeed_config(good, cfg)
    for gather in (False, "auto", None):
        zero = {"stage": 3} if gather is None else {"stage": 3, "stage3_gather_16bit_weights_on_model_save": gather}
        with pytest.raises(PreflightError, match="ZeRO-3.*stage3_gather_16bit_weights_on_model_save"):
            check_deepspeed_config({**good, "zero_optimization": zero}, cfg)
    with pytest.raises(PreflightError, match="gradient_accumulation_steps=4.*two places"):
        check_deepspeed_config({**good, "gradient_accumulation_steps": 4}, cfg)
    with pytest.raises(PreflightError, match="train_batch_size=64"):
        check_deepspeed_config({**good, "train_batch_size": 64}, cfg)  # 4 x 2 x 2 = 16
    with pytest.raises(PreflightError, match="'optimizer' section"):
        check_deepspeed_config({**good, "optimizer": {"type": "AdamW"}}, cfg)
    with pytest.raises(PreflightError, match="fp16.enabled=True"):
        check_deepspeed_config({**good, "fp16": {"enabled": True}}, cfg)


def test_run_preflight_on_a_real_student(student, tmp_path):
    resolved = resolve_training(TrainingConfig(num_processes=2, zero_stage=3), deepspeed=True)
    run_preflight(resolved, student)
    with pytest.raises(PreflightError, match="no config.json"):
        run_preflight(resolved, tmp_path)
    # The launcher refuses before starting any process: no job file, no log, no checkpoint.
    bad = tmp_path / "zero3_nogather.json"
    bad.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    from launch.train_launcher import run_training
    from training_helpers import write_run_config

    config = write_run_config(tmp_path / "cfg", TrainingConfig(num_processes=2, zero_stage=3, deepspeed_config=str(bad)))
    with pytest.raises(PreflightError, match="ZeRO-3"):
        run_training(config, [tmp_path], student, tmp_path / "out", tmp_path / "run", "j")
    assert not (tmp_path / "run").exists()
