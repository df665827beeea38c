"""Scaling-study specs: grid and zip expansion, trial names, per-trial run configs, shared data groups."""

import pytest

from configs.loader import ConfigError, validate_config
from configs.schema import RunConfig
from configs.study_schema import StudyConfig
from ray_jobs.study import load_study, plan_study
from ray_jobs.study_spec import axis_points, expand_study, flatten_keys, load_base_raw, plan_data_groups


def _study(**raw) -> StudyConfig:
    return validate_config(raw, StudyConfig)


def test_grid_is_crossed_and_zip_is_varied_together():
    points = axis_points({"student": ["nano", "tiny"], "seed": [0, 1]},
                         {"data_size": [100, 200], "training.learning_rate": [0.01, 0.001]})
    assert len(points) == 2 * 2 * 2  # grid product x zip rows, never the zip's own product
    assert {(p["data_size"], p["training.learning_rate"]) for p in points} == {(100, 0.01), (200, 0.001)}
    assert points[0] == {"student": "nano", "seed": 0, "data_size": 100, "training.learning_rate": 0.01}


def test_trials_are_named_after_what_they_are_and_missing_axes_take_the_base_value():
    study = _study(grid={"student": ["nano", "mini"], "method": ["ld", "kd"]}, zip={"training.learning_rate": [0.003]})
    base = validate_config({"generation": {"train_episodes": 300}, "run": {"seed": 7}}, RunConfig)
    names = [t.name for t in expand_study(study, base)]
    assert names == ["ld-nano-d300-s7-learningrate0.003", "kd-nano-d300-s7-learningrate0.003",
                     "ld-mini-d300-s7-learningrate0.003", "kd-mini-d300-s7-learningrate0.003"]


def test_a_checkpoint_path_is_a_student_named_by_its_folder(tmp_path):
    ckpt = tmp_path / "my-student"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    study = _study(grid={"student": [str(ckpt)]})
    [trial] = expand_study(study, RunConfig())
    assert trial.name == "ld-my_student-d240-s0" and trial.student == str(ckpt)


@pytest.mark.parametrize("raw, message", [
    ({"grid": {"size": ["tiny"]}}, "unknown axis 'size'"),
    ({"grid": {"method": ["ld", "rl"]}}, "known methods: ld, kd"),
    ({"grid": {"seed": [0, 0]}}, "repeats a value"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"zip": {"seed": [0, 1], "data_size": [10]}}, "equal lengths"),
    ({"grid": {"seed": [0]}, "zip": {"seed": [1]}}, "in both grid and zip"),
    ({}, "at least one axis"),
    ({"grid": {"data_size": [0]}}, "at least one episode"),
])
def test_bad_axes_are_refused_with_the_reason(raw, message):
    with pytest.raises(ConfigError, match=message):
        _study(**raw)


def test_unknown_student_is_neither_preset_nor_checkpoint():
    with pytest.raises(ConfigError, match="'huge' is neither a shipped preset"):
        expand_study(_study(grid={"student": ["huge"]}), RunConfig())


def test_nested_and_dotted_overrides_merge_into_the_base(tmp_path):
    assert flatten_keys({"training": {"epochs": 2, "lora": {"r": 4}}, "eval.episodes": 5}) == [
        ("training.epochs", 2), ("training.lora.r", 4), ("eval.episodes", 5)]
    study = _study(base={"config": "configs/quickstart.yaml", "overrides": {"training": {"epochs": 1}}},
                   grid={"seed": [0]})
    raw = load_base_raw(study)
    assert raw["training"] == {"num_processes": 2, "zero_stage": 2, "epochs": 1}  # merged, not replaced


def test_plan_gives_each_trial_its_config_and_one_data_group_for_all(tmp_path):
    study = _study(study={"name": "t", "output_dir": str(tmp_path)}, grid={
        "student": ["nano", "tiny"], "method": ["ld", "kd"], "seed": [0, 1], "data_size": [60, 100]},
        resources={"num_processes": 1})
    plan = plan_study(study)
    assert len(plan.trials) == 16 and len(plan.configs) == 16
    cfg = plan.configs["kd-tiny-d60-s1"]
    assert cfg.student.preset == "tiny" and cfg.eval.policies == ["kd_student"]
    assert (cfg.run.seed, cfg.training.seed, cfg.generation.train_episodes, cfg.training.num_processes) == (1, 1, 60, 1)
    assert cfg.wandb.group == "t" and cfg.run.name == "kd-tiny-d60-s1"
    [group] = plan.groups.values()  # seeds, sizes, methods and data sizes all share one teacher run
    assert group.episodes == 100 and group.episodes_per_unit == 20  # gcd(20, 60, 100): prefixes are whole tasks
    assert len(group.trials) == 16


def test_a_different_teacher_or_task_is_a_different_data_group():
    configs = {name: validate_config(raw, RunConfig) for name, raw in {
        "a": {"generation": {"train_episodes": 50}}, "b": {"generation": {"train_episodes": 80, "num_actors": 7}},
        "c": {"teacher": {"temperature": 0.7}}, "d": {"task": {"pursuit": {"max_steps": 20}}}}.items()}
    groups = plan_data_groups(configs)
    assert sorted(sorted(g.trials) for g in groups.values()) == [["a", "b"], ["c"], ["d"]]
    shared = next(g for g in groups.values() if "a" in g.trials)
    assert shared.episodes == 80 and shared.config.generation.train_episodes == 80


def test_shipped_studies_plan(tmp_path):
    cpu = plan_study(load_study("configs/studies/cpu_scaling.yaml"), tmp_path / "cpu")
    assert len(plan_study(load_study("configs/studies/gpu_scaling.yaml"), tmp_path / "gpu").trials) == 32
    students = {t.student for t in cpu.trials}
    assert len(students) >= 3 and {t.method for t in cpu.trials} == {"ld", "kd"} and len({t.seed for t in cpu.trials}) == 2
