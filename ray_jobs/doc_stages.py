"""Divide-or-Conquer's stages on Ray: the teacher samples, the students' data, every pipeline evaluated, the results.

Each stage reads and writes only files under the run directory; the order of the stages and the students'
training launch are `launch/doc.py`'s. The sampling job itself is `ray_jobs/doc_samples.py`, pipeline
evaluation on Ray actors `ray_jobs/doc.py`, tables and plot `ray_jobs/doc_report.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from configs.doc_schema import DocRunConfig
from generation.doc.domains import DocItem, get_domain
from generation.storage.tracking import Tracker
from ray_jobs.stages import StageError, console

EVAL_SEED_OFFSET = 1_000_000  # held-out questions come from a seed range training never touches
STUDENT_DATA = {"sd_t": "decomposer, all teacher samples", "sd_r": "decomposer, samples that reached gold",
                "se_t": "solver, teacher solutions", "se_a": "solver, gold answer substituted"}


def doc_items(cfg: DocRunConfig, domain: str, split: str) -> list[DocItem]:
    n, offset = (cfg.task.train_questions, 0) if split == "train" else (cfg.task.eval_questions, EVAL_SEED_OFFSET)
    options = getattr(cfg.task, domain).model_dump()
    return get_domain(domain).make_items(n, cfg.run.seed * 10 * EVAL_SEED_OFFSET + offset, options)


def file_items(eval_file) -> list[DocItem]:
    from generation.datasets.loaders import DatasetError, load_dataset_file

    try:
        qa_items = load_dataset_file(eval_file.format, eval_file.path, eval_file.limit)
    except DatasetError as exc:
        raise StageError(str(exc)) from None
    return get_domain(eval_file.format).items_from(qa_items)


def collect_teacher_samples(cfg: DocRunConfig, run_dir: Path, tracker: Tracker, services: Any) -> list:
    from generation.doc.samples import DecompositionSample, rejection_sample
    from generation.storage.shards import read_records
    from ray_jobs.doc_samples import read_samples, run_sampling

    legacy = run_dir / "data" / "samples.parquet"  # runs made before sampling was committed unit by unit
    if legacy.exists():
        return read_records([legacy], DecompositionSample)
    summary = run_sampling(cfg, run_dir / "data", doc_items(cfg, cfg.task.train_domain, "train"), services, tracker)
    records = read_samples(run_dir / "data")
    if not any(r.parsed for r in records):
        first = next((r.parse_error for r in records if r.parse_error), "no reply")
        raise StageError(f"the teacher produced no parseable decomposition ({len(records)} samples); first error: "
                         f"{first}")
    stats = {"samples": len(records), "parsed_rate": sum(r.parsed for r in records) / len(records),
             "solved_rate": sum(r.solved for r in records) / len(records),
             "sd_r_kept": len(rejection_sample(records)), "rejections": summary["rejections"],
             "teacher_cost_usd": summary["teacher_cost_usd"], "teacher_input_tokens": summary["teacher_input_tokens"],
             "teacher_output_tokens": summary["teacher_output_tokens"]}
    tracker.log({f"samples/{k}": v for k, v in stats.items()})
    console.print(f"teacher samples: {stats}")
    return records


def write_student_data(cfg: DocRunConfig, run_dir: Path, records: list) -> dict[str, Path]:
    from generation.doc.samples import decomposer_rows, rejection_sample, solver_rows
    from generation.storage.shards import write_shard

    builders = {"sd_t": lambda: decomposer_rows(records, cfg.task.max_sub_questions),
                "sd_r": lambda: decomposer_rows(rejection_sample(records), cfg.task.max_sub_questions),
                "se_t": lambda: solver_rows(records, gold_answer=False)[:cfg.task.solver_train_questions],
                "se_a": lambda: solver_rows(records, gold_answer=True)[:cfg.task.solver_train_questions]}
    paths = {}
    for name in cfg.students:
        path = paths[name] = run_dir / "data" / f"{name}.parquet"
        if not path.exists():
            rows = builders[name]()
            if not rows:
                raise StageError(f"no training rows for {name} ({STUDENT_DATA[name]}); see {run_dir / 'data'}")
            write_shard(rows, path)
    return paths


def pipeline_spec(name: str, students: dict[str, Path]) -> dict[str, Any]:
    """"sd_r>teacher" -> decomposer student sd_r, solver teacher; "student" means the untrained student."""
    if name == "single_stage":
        return {"decomposer": "none", "solver": "teacher"}
    spec: dict[str, Any] = {}
    for stage, who in zip(("decomposer", "solver"), name.split(">")):
        if who == "teacher":
            spec[stage] = "teacher"
        else:
            spec[stage], spec[f"{stage}_checkpoint"] = "student", str(students["init" if who == "student" else who])
    return spec


def _by_steps(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[int, list[float]] = {}
    for r in records:
        groups.setdefault(r["steps"], []).append(r["score"])
    return {str(k): {"success_rate": sum(v) / len(v), "questions": len(v)} for k, v in sorted(groups.items())}


def evaluate_pipelines(cfg: DocRunConfig, run_dir: Path, students: dict[str, Path], tracker: Tracker,
                       services: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Every pipeline on held-out questions; the decomposers also on the other domain."""
    from generation.doc.pipelines import summarise
    from ray_jobs.doc_report import table_row
    from ray_jobs.doc import run_doc_jobs

    domains = {f"{cfg.task.train_domain} (in-domain)": (cfg.task.train_domain, cfg.eval.pipelines)}
    if cfg.task.cross_domain:
        domains[f"{cfg.task.cross_domain} (cross-domain: decomposers trained on {cfg.task.train_domain})"] = \
            (cfg.task.cross_domain, cfg.eval.cross_pipelines)
    files = {f"{f.format} ({Path(f.path).name}; decomposers trained on {cfg.task.train_domain})": f
             for f in cfg.task.eval_files}
    domains.update({title: (f.format, cfg.eval.cross_pipelines) for title, f in files.items()})
    jobs, where = {}, {}
    for title, (domain, pipelines) in domains.items():
        items = file_items(files[title]) if title in files else doc_items(cfg, domain, "eval")
        for name in pipelines:
            jobs[f"{domain}/{name}"] = (pipeline_spec(name, students), items)
            where[f"{domain}/{name}"] = (title, name)
    records, _ = run_doc_jobs(cfg, run_dir, jobs, "evaluation (pipelines)", services.hooks)
    (run_dir / "eval").mkdir(exist_ok=True)
    sections: dict[str, dict[str, dict[str, Any]]] = {title: {} for title in domains}
    samples = []
    for job, rows in records.items():
        title, name = where[job]
        rows.sort(key=lambda r: r["uid"])
        with (run_dir / "eval" / f"{job.replace('/', '-').replace('>', '_to_')}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        summary = summarise(rows, get_domain(rows[0]["domain"]).metric)
        sections[title][name] = {**table_row(summary), "by_steps": _by_steps(rows)}
        tracker.log({f"eval/{job}/{k}": v for k, v in sections[title][name].items() if isinstance(v, (int, float))})
        samples += [[job, r["uid"], " | ".join(r["sub_questions"]), r["solution"][-300:], r["predicted"], r["score"]]
                    for r in rows[:3]]
    tracker.log_table("sample_pipelines", ["pipeline", "uid", "sub_questions", "solution", "predicted", "score"],
                      samples)
    return sections


def _notes(cfg: DocRunConfig) -> list[str]:
    backend = cfg.teacher.backend
    from generation.teachers.base import price_per_1k

    per_in, per_out = price_per_1k(cfg.teacher)
    notes = [f"Teacher: {backend} `{cfg.teacher.model}`, priced ${per_in} input / ${per_out} output per 1k tokens "
             "(teacher price table). Student tokens are listed apart and not billed."]
    if backend == "expert":
        e = cfg.expert
        notes.append(f"The expert teacher's mistakes are SIMULATED (generation/doc/simulate.py): decomposition "
                     f"error rate {e.decomposition_error_rate}, step error {e.step_error}, +{e.error_growth_per_step} "
                     "per further step reasoned without a sub-question.")
    return notes



def write_doc_results(cfg: DocRunConfig, run_dir: Path, sections: dict[str, dict[str, dict[str, Any]]],
                      tracker: Tracker, wall: float) -> dict[str, dict[str, Any]]:
    """results.json, results.md and results.png, and the same figures to W&B; returns {section/pipeline: row}."""
    from ray_jobs.doc_report import plot_accuracy_vs_cost, results_markdown
    from ray_jobs.report import write_results

    flat = {f"{title}/{name}": r for title, results in sections.items() for name, r in results.items()}
    write_results(run_dir, flat, {"run_dir": str(run_dir), "wall_time_s": wall,
                                         "sections": list(sections), "notes": _notes(cfg)})
    plot = plot_accuracy_vs_cost(sections, run_dir / "results.png")
    (run_dir / "results.md").write_text(results_markdown(sections, _notes(cfg)))
    tracker.log_image("accuracy_vs_cost", plot)
    tracker.log({"wall_time_s": wall})
    tracker.summary({f"{k}/{m}": v for k, r in flat.items() for m, v in r.items() if isinstance(v, (int, float))})
    return flat
