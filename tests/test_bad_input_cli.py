"""Bad input at the front door: every CLI command refuses bad arguments, and every config field
refuses a value of the wrong kind, with a message naming the argument or the field.

Run: .venv/bin/pytest tests/test_bad_input_cli.py
"""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from configs.loader import ConfigError, _section_model, load_config
from configs.schema import RunConfig
from launch.cli import main

COMMANDS = ["run", "generate", "train", "evaluate"]

# (override, what the error must say)
BAD_OVERRIDES = [
    ("eval.episodes=0", "eval.episodes"),
    ("eval.episodes=many", "eval.episodes"),
    ("eval.policies=[teacher,oracle]", "eval.policies"),
    ("generation.train_episodes=-3", "generation.train_episodes"),
    ("teacher.cache.mode=sometimes", "teacher.cache.mode"),
    ("generation.cache.mode=file", "has moved to 'teacher.cache'"),
    ("generation.episodes_per_task=3", "has moved to 'generation.episodes_per_unit'"),
    ("teacher.backend=claude", "teacher.backend"),
    ("teacher.temperature=7", "teacher.temperature"),
    ("teacher.base_url=ftp://x", "teacher.base_url"),
    ("teacher.limits.requests_per_minute=-1", "teacher.limits.requests_per_minute"),
    ("training.max_steps=abc", "training.max_steps"),
    ("training.deepspeed_config=zero3_offload", "set training.zero_stage: 3"),
    ("training.deepspeed_config=zero9", "training.deepspeed_config"),
    ("sandbox.memory_mb=-1", "sandbox.memory_mb"),
    ("run.name=has space/and slash", "run.name"),
    ("task.env=no such env!", "task.env"),
    ("wandb.mode=loud", "wandb.mode"),
    ("eval.episods=5", "did you mean 'eval.episodes'"),
    ("teacher.limits.rpm=5", "unknown config key 'teacher.limits.rpm'"),
    ("nosection.x=1", "unknown config key 'nosection'"),
    ("eval=3", "eval"),
    ("eval.episodes.deeper=3", "eval.episodes"),
    ("justakey", "not of the form key.path=value"),
    ("=3", "not of the form key.path=value"),
    ("eval..episodes=3", "empty key segment"),
    ("eval.policies=[unclosed", "not valid YAML"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("override,expected", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_every_command_rejects_a_bad_override_naming_the_field(command, override, expected, tmp_path, capsys):
    code = main([command, "configs/quickstart.yaml", override, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was started


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_config_files_are_named(command, tmp_path, capsys):
    cases = {tmp_path / "missing.yaml": "config file not found",
             tmp_path / "list.yaml": "top level must be a mapping",
             tmp_path / "broken.yaml": "not valid YAML"}
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("eval: {episodes: [\n")
    for path, expected in cases.items():
        assert main([command, str(path), "--run-dir", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert expected in err and str(path) in err


@pytest.mark.parametrize("argv,expected", [
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
    (["train", "--method", "rl", "--run-dir", "x"], "--method: invalid choice: 'rl'"),
    (["run", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
])
def test_argument_errors_name_the_argument(argv, expected, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and expected in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_commands_needing_a_run_directory_say_so(command, capsys):
    assert main([command]) == 2
    assert "--run-dir" in capsys.readouterr().err


def _leaf_fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        sub = _section_model(field.annotation)
        if sub is not None:
            yield from _leaf_fields(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.annotation


def _accepts_any_text(annotation) -> bool:
    """str, `str | None`, Any, free-form dicts of Any: a word is a legal value there."""
    if annotation in (str, typing.Any):
        return True
    args = typing.get_args(annotation)
    return str in args if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType) else False


LEAVES = list(_leaf_fields(RunConfig))
TYPED_LEAVES = [(p, a) for p, a in LEAVES if not _accepts_any_text(a)]  # free text takes any word


def test_the_schema_walk_finds_every_section():
    sections = {path.split(".")[0] for path, _ in LEAVES}
    assert {"run", "task", "teacher", "generation", "student", "training", "eval", "sandbox", "wandb",
            "ray"} <= sections and len(LEAVES) > 80


@pytest.mark.parametrize("path,annotation", TYPED_LEAVES, ids=[p for p, _ in TYPED_LEAVES])
def test_every_config_field_rejects_a_value_of_the_wrong_kind_naming_the_field(path, annotation):
    """A word where a number, flag, choice, list or mapping belongs: refused, the message naming the field."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"{path}=not_a_valid_value_x"], RunConfig)
    message = str(info.value)
    assert path in message or path.rsplit(".", 1)[-1] in message, message


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out.split("positional arguments:")[1].split("options:")[0]
    for command in ("run", "generate", "train", "evaluate", "ltr", "doc", "study", "sizes"):
        assert f"\n    {command} " in listed, listed


def test_overrides_may_follow_the_options(tmp_path, capsys):
    # a bad value after --run-dir is still read, and still named: the override was not dropped
    code = main(["generate", "configs/quickstart.yaml", "--run-dir", str(tmp_path / "run"), "eval.episodes=0"])
    assert code == 2 and "eval.episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "configs/quickstart.yaml", "--run-dir", str(tmp_path / "run"), "--no-such-flag"])
    assert exit_info.value.code == 2 and "--no-such-flag" in capsys.readouterr().err
