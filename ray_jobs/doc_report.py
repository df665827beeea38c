"""Divide-or-Conquer results as Markdown tables and an accuracy-vs-teacher-cost plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray_jobs.report import by_kind_table, markdown_table

COLUMNS = ("pipeline", "accuracy", "exact_match", "teacher_usd_per_1k_q", "decomposition_usd_per_1k_q",
           "teacher_in_per_q", "teacher_out_per_q", "student_in_per_q", "student_out_per_q",
           "decomposition_valid", "gold_decomposition", "questions")


def table_row(summary: dict[str, Any]) -> dict[str, Any]:
    """A pipeline summary in the table's units: dollars per 1,000 questions, tokens per question."""
    return {**summary,
            "teacher_usd_per_1k_q": 1000 * summary["teacher_cost_usd_per_q"],
            "decomposition_usd_per_1k_q": 1000 * summary["decomposition_teacher_cost_usd_per_q"],
            "teacher_in_per_q": round(summary["teacher_input_tokens_per_q"], 1),
            "teacher_out_per_q": round(summary["teacher_output_tokens_per_q"], 1),
            "student_in_per_q": round(summary["student_input_tokens_per_q"], 1),
            "student_out_per_q": round(summary["student_output_tokens_per_q"], 1)}


def results_markdown(sections: dict[str, dict[str, dict[str, Any]]], notes: list[str]) -> str:
    """One table per section (in-domain, cross-domain), then accuracy by number of reasoning steps."""
    parts = []
    for title, results in sections.items():
        metric = next(iter(results.values()))["metric"]
        parts.append(f"### {title} (accuracy = {metric})\n\n" + markdown_table(results, columns=COLUMNS))
        by_steps = {name: r["by_steps"] for name, r in results.items()}
        parts.append(f"Accuracy by reasoning steps ({title}):\n\n" + by_kind_table(by_steps).replace("| kind |",
                                                                                                     "| steps |"))
    return "\n\n".join(parts + notes) + "\n"


def plot_accuracy_vs_cost(sections: dict[str, dict[str, dict[str, Any]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sections), figsize=(6.2 * len(sections), 4.4), squeeze=False)
    for ax, (title, results) in zip(axes[0], sections.items()):
        points: dict[tuple[float, float], list[str]] = {}  # pipelines at one spot share one legend entry
        for name, r in results.items():
            points.setdefault((r["teacher_usd_per_1k_q"], r["accuracy"]), []).append(name)
        for (x, y), names in points.items():
            student_solver = all(n.endswith(("se_t", "se_a")) for n in names)
            ax.scatter([x], [y], s=60, marker="s" if student_solver else "o", label=" = ".join(names))
        ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel("teacher cost, $ per 1,000 questions")
        ax.set_ylabel(f"accuracy ({next(iter(results.values()))['metric']})")
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlim(0, 1.3 * max(r["teacher_usd_per_1k_q"] for r in results.values()) or 1.0)  # room for labels
        ax.grid(alpha=0.3)
        ax.set_title(title)
    fig.suptitle("Divide-or-Conquer: accuracy vs teacher cost")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
