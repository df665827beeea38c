"""Config loading: YAML + overrides, unknown keys with suggestions, resolved config saved."""

import pytest
import yaml

from configs.loader import ConfigError, load_config, parse_override, save_resolved, validate_config
from configs.schema import RunConfig


def test_embedded_default_is_offline_cpu_expert():
    cfg = RunConfig()
    assert cfg.teacher.backend == "expert"
    assert cfg.wandb.mode == "offline"
    assert cfg.student.preset == "tiny"


def test_overrides_are_typed(tmp_path):
    cfg = load_config("configs/quickstart.yaml", ["eval.episodes=50", "training.learning_rate=1e-4",
                                                  "generation.only_successful=false"], RunConfig)
    assert cfg.eval.episodes == 50
    assert cfg.training.learning_rate == pytest.approx(1e-4)
    assert cfg.generation.only_successful is False


@pytest.mark.parametrize("override, bad_key, nearest", [
    ("trainig.epochs=3", "trainig", "training"),
    ("training.epoch=3", "training.epoch", "training.epochs"),
    ("eval.episods=5", "eval.episods", "eval.episodes"),
])
def test_unknown_key_names_key_and_nearest(override, bad_key, nearest):
    with pytest.raises(ConfigError) as err:
        load_config("configs/quickstart.yaml", [override], RunConfig)
    assert f"unknown config key '{bad_key}'" in str(err.value)
    assert f"did you mean '{nearest}'" in str(err.value)


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"eval": {"episodes": 5, "num_wrokers": 2}}))
    with pytest.raises(ConfigError, match="eval.num_wrokers.*eval.num_workers"):
        load_config(path, [], RunConfig)


def test_wrong_type_names_the_field():
    with pytest.raises(ConfigError, match="eval.episodes"):
        load_config(None, ["eval.episodes=many"], RunConfig)
    with pytest.raises(ConfigError, match="teacher.backend"):
        load_config(None, ["teacher.backend=gpt"], RunConfig)


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=3"])
def test_malformed_override(text):
    with pytest.raises(ConfigError):
        parse_override(text)


def test_missing_file_is_clear():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/nope.yaml", [], RunConfig)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("configs/quickstart.yaml", ["eval.episodes=7"], RunConfig)
    path = save_resolved(cfg, tmp_path)
    again = load_config(path, [], RunConfig)
    assert again == cfg


def test_a_config_saved_before_the_one_stage_key_is_named_with_the_fix():
    old = {"training": {"zero_stage": None, "deepspeed_config": "zero3"}}
    with pytest.raises(ConfigError, match=r"saved before zero_stage became the one key.*'zero3'"):
        validate_config(old, RunConfig)
    fixed = validate_config({"training": {"zero_stage": 3, "deepspeed_config": "zero3"}}, RunConfig)
    assert fixed.training.zero_stage == 3
