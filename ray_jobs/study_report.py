"""The study's report: every trial in one table (CSV + Markdown), the seed means, a power-law fit per
method, and four PNG plots with log axes. Pure apart from matplotlib; W&B logging is in `log_study`."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from ray_jobs.study_fit import PowerLawFit, fit_by_method
from ray_jobs.study_plots import plot_all

COLUMNS = ("name", "method", "student", "data_size", "seed", "success_rate", "valid_rate", "mean_steps",
           "parameters", "non_embedding_parameters", "flops_per_token", "train_flops", "train_tokens",
           "tokens_per_s", "final_loss", "train_wall_s", "wall_s", "teacher_input_tokens", "teacher_output_tokens",
           "teacher_cost_usd", "episodes")


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table_columns(rows: list[dict[str, Any]], metric: str) -> list[str]:
    columns = list(COLUMNS)
    if metric not in columns:
        columns.insert(5, metric)
    return columns


def markdown(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def seed_means(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Mean and spread over seeds of each (method, student, data size)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["student"], row["data_size"])].append(row)
    out = []
    for (method, student, data_size), members in groups.items():
        values = [m[metric] for m in members if m.get(metric) is not None]
        out.append({"method": method, "student": student, "data_size": data_size, "seeds": len(members),
                    f"{metric}_mean": statistics.fmean(values) if values else None,
                    f"{metric}_std": statistics.stdev(values) if len(values) > 1 else None,
                    "parameters": members[0].get("parameters"),
                    "train_flops": statistics.fmean(m.get("train_flops") or 0.0 for m in members),
                    "tokens_per_s": statistics.fmean(m.get("tokens_per_s") or 0.0 for m in members)})
    return sorted(out, key=lambda r: (r["method"], r["data_size"], r["parameters"] or 0))


def study_markdown(name: str, rows: list[dict[str, Any]], failures: list[dict[str, Any]], metric: str,
                   against: str, fits: dict[str, PowerLawFit | str], teacher: dict[str, dict[str, Any]]) -> str:
    columns = table_columns(rows, metric)
    means = seed_means(rows, metric)
    mean_cols = ["method", "student", "data_size", "seeds", f"{metric}_mean", f"{metric}_std", "parameters",
                 "train_flops", "tokens_per_s"]
    parts = [f"# Scaling study `{name}`", f"{len(rows)} finished trial(s), {len(failures)} failed.",
             "## Every trial", markdown(columns, [[r.get(c) for c in columns] for r in rows]),
             f"## Mean over seeds ({metric})", markdown(mean_cols, [[m.get(c) for c in mean_cols] for m in means]),
             f"## Power law: {metric} against {against}"]
    x_name = "N" if against == "parameters" else "C"
    parts += [f"- **{method}**: " + (fit.describe(x_name) if isinstance(fit, PowerLawFit) else fit)
              for method, fit in fits.items()]
    if teacher:
        parts.append("Teacher reference (held-out): " + ", ".join(
            f"{key}: {metric} {fmt(ref.get(metric))}" for key, ref in teacher.items()))
    if failures:
        parts.append("## Failed trials")
        parts += [f"- `{f['name']}`: {f['error'].splitlines()[0][:300]} (log: {f.get('log')})" for f in failures]
    return "\n\n".join(parts) + "\n"


def write_report(study_dir: Path, name: str, rows: list[dict[str, Any]], failures: list[dict[str, Any]],
                 metric: str, against: str, teacher: dict[str, dict[str, Any]],
                 cost_curves: dict[str, list[tuple[int, float, float]]]) -> dict[str, Any]:
    """study.csv, study.md and the plots; returns their paths and the fits."""
    columns = table_columns(rows, metric)
    fits = fit_by_method(rows, metric, against)
    csv_path = write_csv(rows, columns, study_dir / "study.csv")
    md_path = study_dir / "study.md"
    md_path.write_text(study_markdown(name, rows, failures, metric, against, fits, teacher))
    plots = plot_all(study_dir, rows, metric, fits, against, teacher, cost_curves) if rows else {}
    return {"csv": csv_path, "markdown": md_path, "plots": plots, "fits": fits, "columns": columns}
