"""A scaling study end to end: plan the trials, generate each data group once, run the trials, report.

    logic-distill study configs/studies/cpu_scaling.yaml               # Ray (a local cluster by default)
    logic-distill study configs/studies/cpu_scaling.yaml --slurm       # write an sbatch array instead
    logic-distill study configs/studies/cpu_scaling.yaml --trial ld-tiny-d400-s0   # one trial, here

Layout of `<study.output_dir>/<study.name>/` (a rerun of the same command resumes in it):

    config.resolved.yaml        the study, resolved (what --slurm commands and reruns read)
    data/<group>/               one pipeline run directory per data group: function base + shards
    trials/<name>/              one run directory per trial; result.json / error.json are its markers
    study.csv, study.md, *.png  the report (ray_jobs/study_report.py)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from configs.loader import ConfigError, load_config, save_resolved, validate_config
from configs.schema import RunConfig
from configs.study_schema import StudyConfig
from generation.storage.tracking import Tracker
from ray_jobs.study_spec import DataGroup, Trial, expand_study, load_base_raw, plan_data_groups, trial_config
from ray_jobs.sweep import SweepItem, finished_result


@dataclass
class StudyPlan:
    study: StudyConfig
    study_dir: Path
    trials: list[Trial]
    configs: dict[str, RunConfig]  # trial name -> its run config
    groups: dict[str, DataGroup]  # data key -> group

    def group_of(self, name: str) -> DataGroup:
        return next(g for g in self.groups.values() if name in g.trials)

    def trial_dir(self, name: str) -> Path:
        return self.study_dir / "trials" / name

    def group_dir(self, group: DataGroup) -> Path:
        return self.study_dir / "data" / group.key


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    study = load_config(path, overrides, StudyConfig)
    if study.base.config and not Path(study.base.config).is_absolute():
        # The resolved copy lives in the study folder: keep its base config findable from there.
        base = Path(study.base.config)
        base = base if base.exists() else Path(path).parent / base
        study = study.model_copy(update={"base": study.base.model_copy(update={"config": str(base.resolve())})})
    return study


def plan_study(study: StudyConfig, study_dir: Path | None = None) -> StudyPlan:
    """Every trial's run config and the data groups, checked before anything runs."""
    study_dir = Path(study_dir or Path(study.study.output_dir) / study.study.name)
    base_raw = load_base_raw(study)
    base = trial_config_base(base_raw)
    trials = expand_study(study, base)
    configs = {t.name: trial_config(study, base_raw, t, study_dir / "trials") for t in trials}
    configs = {name: cfg.model_copy(update={"ray": study.ray}) for name, cfg in configs.items()}
    return StudyPlan(study, study_dir, trials, configs, plan_data_groups(configs))


def trial_config_base(base_raw: dict) -> RunConfig:
    try:
        return validate_config(base_raw, RunConfig)
    except ConfigError as exc:
        raise ConfigError(f"base run config: {exc}") from None


def sweep_items(plan: StudyPlan) -> list[SweepItem]:
    res = plan.study.resources
    items = []
    for trial in plan.trials:
        folder = plan.trial_dir(trial.name)
        payload = {"trial": trial.as_dict(), "config": plan.configs[trial.name].model_dump(mode="json"),
                   "data_dir": str(plan.group_dir(plan.group_of(trial.name)) / "data"), "trial_dir": str(folder)}
        items.append(SweepItem(trial.name, folder, payload, res.cpus_per_trial, res.gpus,
                               log_path=folder / "logs" / f"train_{trial.method}.log"))
    return items


def _teacher_reference(cfg: RunConfig, group_dir: Path) -> dict[str, Any]:
    """The teacher's own held-out score for this data group (once; cached in teacher_eval.json)."""
    from generation.ld.envs.registry import make_env
    from ray_jobs.evaluate import evaluate_policies

    path = group_dir / "teacher_eval.json"
    if path.is_file():
        return json.loads(path.read_text())
    seeds = make_env(cfg.task).heldout_seeds(cfg.eval.episodes)
    metrics = evaluate_policies(cfg, str(group_dir / "function_base.json"), {"teacher": {"kind": "teacher"}},
                                seeds)["teacher"]["metrics"]
    metrics["valid_rate"] = 1.0 - metrics["invalid_rate"]
    path.write_text(json.dumps(metrics, indent=1))
    return metrics


def prepare_data(plan: StudyPlan, tracker: Tracker | None = None) -> dict[str, dict[str, Any]]:
    """Generate every data group's largest size once (resumable), then the teacher reference."""
    from ray_jobs.stages import console
    from ray_jobs.ld_data import generate

    references = {}
    for group in plan.groups.values():
        group_dir = plan.group_dir(group)
        save_resolved(group.config, group_dir)
        console.rule(f"data group {group.key}: {group.episodes} episodes for {len(group.trials)} trial(s)")
        generate(group.config, group_dir, tracker or Tracker(group_dir, group.config.wandb.model_copy(
            update={"mode": "disabled"}), "generate"))
        if plan.study.study.eval_teacher:
            references[group.key] = _teacher_reference(group.config, group_dir)
    return references


def save_plan(plan: StudyPlan) -> Path:
    """The resolved study and its trial list: what reruns, `--slurm` scripts and the report read."""
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(plan.study, plan.study_dir)
    listing = [{**t.as_dict(), "data_group": plan.group_of(t.name).key} for t in plan.trials]
    path = plan.study_dir / "trials.yaml"
    path.write_text(yaml.safe_dump(listing, sort_keys=False))
    return path


def collect_results(plan: StudyPlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(finished rows, failure records) from the trial markers on disk, in trial order."""
    rows, failures = [], []
    for trial in plan.trials:
        folder = plan.trial_dir(trial.name)
        result = finished_result(folder)
        if result is not None:
            rows.append({**result, "data_group": plan.group_of(trial.name).key})
        elif (folder / "error.json").is_file():
            failures.append(json.loads((folder / "error.json").read_text()))
    return rows, failures


def cost_curves(plan: StudyPlan) -> dict[str, list[tuple[int, float, float]]]:
    """Per data group: cumulative (episodes, teacher tokens, teacher USD) at every unit boundary."""
    from generation.storage.shards import Manifest

    curves = {}
    for group in plan.groups.values():
        manifest = Manifest(plan.group_dir(group) / "data")
        episodes, tokens, usd, curve = 0, 0.0, 0.0, []
        for index in sorted(manifest.entries):
            entry = manifest.entries[index]
            episodes += len(entry["seeds"])
            tokens += entry["usage"].get("input_tokens", 0) + entry["usage"].get("output_tokens", 0)
            usd += entry["usage"].get("cost_usd", 0.0)
            curve.append((episodes, tokens, usd))
        curves[group.key] = curve
    return curves


def report(plan: StudyPlan, teacher: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The study's table, plots and fits from the markers on disk; logged to W&B as one study run."""
    from ray_jobs.study_report import write_report

    rows, failures = collect_results(plan)
    if teacher is None:
        teacher = {g.key: json.loads((plan.group_dir(g) / "teacher_eval.json").read_text())
                   for g in plan.groups.values() if (plan.group_dir(g) / "teacher_eval.json").is_file()}
    meta = plan.study.study
    out = write_report(plan.study_dir, meta.name, rows, failures, meta.metric, meta.fit_against, teacher,
                       cost_curves(plan))
    log_study(plan, rows, failures, out)
    return {**out, "rows": rows, "failures": failures}


def log_study(plan: StudyPlan, rows: list[dict[str, Any]], failures: list[dict[str, Any]],
              out: dict[str, Any]) -> None:
    """One W&B run of job `study` in the study's group: the trial table, the plots and the fits."""
    from ray_jobs.study_fit import PowerLawFit

    wandb_cfg = plan.study.wandb.model_copy(update={"group": plan.study.wandb.group or plan.study.study.name})
    tracker = Tracker(plan.study_dir, wandb_cfg, "study", config=plan.study.model_dump(mode="json"))
    try:
        columns = out["columns"]
        tracker.log_table("trials", columns, [[r.get(c) for c in columns] for r in rows])
        for name, path in out["plots"].items():
            tracker.log_image(name, path)
        summary = {"trials_finished": len(rows), "trials_failed": len(failures)}
        for method, fit in out["fits"].items():
            if isinstance(fit, PowerLawFit):
                summary.update({f"fit/{method}/exponent": fit.exponent, f"fit/{method}/exponent_se": fit.exponent_se,
                                f"fit/{method}/exponent_ci_low": fit.exponent_ci[0],
                                f"fit/{method}/exponent_ci_high": fit.exponent_ci[1],
                                f"fit/{method}/coefficient": fit.coefficient, f"fit/{method}/r_squared": fit.r_squared})
        tracker.log(summary)
        tracker.summary(summary)
    finally:
        tracker.finish()
