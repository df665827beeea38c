"""Results of a run as `results.json`, a Markdown table and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("policy", "success_rate", "mean_steps", "invalid_rate", "episodes")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _extra_columns(results: dict[str, dict[str, Any]]) -> list[str]:
    """Numbers beyond the standard columns (env scores such as win_rate, runtime_use_rate), sorted."""
    return sorted({k for m in results.values() for k, v in m.items()
                   if k not in COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)})


def markdown_table(results: dict[str, dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    """One row per key of `results`; `columns` (first = the key's header) default to the LD columns + extras."""
    columns = list(columns) if columns else [*COLUMNS, *_extra_columns(results)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for policy, m in results.items():
        lines.append("| " + " | ".join([policy, *(_fmt(m.get(c)) for c in columns[1:])]) + " |")
    return "\n".join(lines)


def by_kind_table(by_kind: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Success rate per instruction kind (rows) and policy (columns)."""
    policies = list(by_kind)
    kinds = sorted({k for per in by_kind.values() for k in per if k != "all"})
    lines = ["| kind | " + " | ".join(policies) + " |", "|" + "---|" * (len(policies) + 1)]
    for kind in kinds:
        cells = [_fmt(by_kind[p].get(kind, {}).get("success_rate")) for p in policies]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(run_dir: Path, results: dict[str, dict[str, Any]], extra: dict[str, Any]) -> Path:
    path = run_dir / "results.json"
    path.write_text(json.dumps({**results, "_run": extra}, indent=2))
    return path


def plot_results(results: dict[str, dict[str, Any]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "success_rate", "success rate"), (axes[1], "invalid_rate", "invalid-decision rate")):
        values = [results[n][key] for n in names]
        bars = ax.bar(names, values, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974"][: len(names)])
        ax.set_ylim(0, 1.05)
        ax.set_title(label)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
        ax.tick_params(axis="x", labelrotation=20)
    n = max(results[x]["episodes"] for x in names)
    fig.suptitle(f"{title} ({n} held-out episodes per policy)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
