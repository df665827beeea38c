"""Learn-to-Reason results: the per-round held-out accuracy table (arms side by side), the plot,
results.json (through launch/report.write_results) and the W&B summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray_jobs.report import write_results

ARM_LABELS = {"full": "full (tailored + reflection)", "no_reflection": "no self-reflection",
              "no_tailoring": "no tailoring", "one_round": "one round (same epochs)"}


def accuracy_by_round(history: dict[str, list[dict]]) -> dict[str, dict[int, float]]:
    return {arm: {h["round"]: h["heldout_accuracy"] for h in rounds} for arm, rounds in history.items()}


def round_table(history: dict[str, list[dict]], num_rounds: int) -> str:
    """Rows: rounds 0..R; columns: arms. The one-round arm, trained as long as R rounds, sits in row R."""
    table = accuracy_by_round(history)
    arms = list(table)
    lines = ["| round | " + " | ".join(ARM_LABELS.get(a, a) for a in arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for r in range(num_rounds + 1):
        cells = []
        for arm in arms:
            key = 1 if arm == "one_round" and r == num_rounds else r
            shown = arm != "one_round" or r in (0, num_rounds)
            value = table[arm].get(key) if shown else None
            cells.append("-" if value is None else f"{value:.3f}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details_table(history: dict[str, list[dict]]) -> str:
    columns = ("exam", "exam_accuracy", "teacher_requests", "train_rows", "triplets", "train_loss", "heldout_accuracy")
    lines = ["| arm | round | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for arm, rounds in history.items():
        for h in rounds[1:]:
            cells = [f"{h[c]:.3f}" if isinstance(h.get(c), float) else str(h.get(c, "-")) for c in columns]
            lines.append(f"| {arm} | {h['round']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_rounds(history: dict[str, list[dict]], num_rounds: int, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm, by_round in accuracy_by_round(history).items():
        if arm == "one_round":
            ax.plot([0, num_rounds], [by_round[0], by_round[1]], "s--", label=ARM_LABELS[arm], alpha=0.8)
            continue
        rounds = sorted(by_round)
        ax.plot(rounds, [by_round[r] for r in rounds], "o-", label=ARM_LABELS.get(arm, arm))
    ax.set_xlabel("round")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(range(num_rounds + 1))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(cfg, run_dir: Path, history: dict[str, list[dict]], tracker, wall_s: float) -> dict[str, Any]:
    rounds = cfg.rounds.num_rounds
    table, details = round_table(history, rounds), details_table(history)
    by_arm = accuracy_by_round(history)
    results = {"heldout_accuracy": {a: {str(r): v for r, v in by.items()} for a, by in by_arm.items()},
               "rounds": history}
    write_results(run_dir, results, {"run_dir": str(run_dir), "wall_time_s": wall_s, "task": cfg.task.source,
                                     "heldout_questions": cfg.task.heldout_questions})
    plot = plot_rounds(history, rounds, run_dir / "results.png", f"Learn-to-Reason on {cfg.task.source}")
    (run_dir / "results.md").write_text(f"Held-out accuracy per round:\n\n{table}\n\nPer round:\n\n{details}\n")
    for r in range(rounds + 1):  # one W&B step per round, the arms' accuracies beside each other
        row = {f"{arm}/heldout_accuracy": by[r] for arm, by in by_arm.items() if r in by}
        if row:
            tracker.log(row, step=r)
    tracker.log({"wall_time_s": wall_s})
    tracker.log_table("rounds", ["arm", "round", "heldout_accuracy"],
                      [[a, r, v] for a, by in accuracy_by_round(history).items() for r, v in by.items()])
    tracker.log_image("results_plot", plot)
    tracker.summary({f"{a}/round{r}": v for a, by in accuracy_by_round(history).items() for r, v in by.items()})
    return results
