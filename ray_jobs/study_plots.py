"""The study's PNG plots, log-scale axes: quality against parameters and against training compute (with
each method's fitted power law), training throughput against size, teacher cost against data size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ray_jobs.study_fit import X_AXES, PowerLawFit, fit_by_method

COLOURS = {"ld": "#4c72b0", "kd": "#c44e52"}
LABELS = {"parameters": "parameters", "train_flops": "training compute (FLOPs)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(method: str) -> str:
    return COLOURS.get(method, "#55a868")


def _by_method(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["method"], []).append(row)
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_quality(rows: list[dict[str, Any]], metric: str, x_col: str, fits: dict[str, Any],
                 teacher: dict[str, dict[str, Any]], path: Path) -> Path:
    """Every trial as a point, the seed mean per size as a marker with its spread, the fit as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    positive = all((r.get(metric) or 0) > 0 for r in rows)
    for method, mine in _by_method(rows).items():
        xs = np.array([r[x_col] or np.nan for r in mine], dtype=float)
        ys = np.array([r[metric] if r.get(metric) is not None else np.nan for r in mine], dtype=float)
        ax.scatter(xs, ys, s=18, alpha=0.45, color=_colour(method))
        sizes = sorted({r["student"] for r in mine}, key=lambda s: np.nanmean(xs[[r["student"] == s for r in mine]]))
        mx = [np.nanmean(xs[[r["student"] == s for r in mine]]) for s in sizes]
        my = [np.nanmean(ys[[r["student"] == s for r in mine]]) for s in sizes]
        sd = [np.nanstd(ys[[r["student"] == s for r in mine]]) for s in sizes]
        ax.errorbar(mx, my, yerr=sd, fmt="o", color=_colour(method), capsize=3, label=f"{method.upper()} (mean ± sd)")
        fit = fits.get(method)
        if isinstance(fit, PowerLawFit):
            grid = np.geomspace(np.nanmin(xs), np.nanmax(xs), 50)
            ax.plot(grid, fit.predict(grid), "--", color=_colour(method),
                    label=f"{method.upper()} fit: exponent {fit.exponent:.2f} "
                          f"[{fit.exponent_ci[0]:.2f}, {fit.exponent_ci[1]:.2f}]")
    for key, ref in teacher.items():
        if ref.get(metric) is not None:
            ax.axhline(ref[metric], color="grey", linestyle=":", label=f"teacher ({ref[metric]:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log" if positive else "linear")  # a zero has no logarithm: then the y axis stays linear
    ax.set_xlabel(LABELS[x_col])
    ax.set_ylabel(metric + ("" if positive else " (linear: some trials scored 0)"))
    ax.set_title(f"{metric} against {LABELS[x_col]}")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_throughput(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, mine in _by_method(rows).items():
        pairs = [(r["parameters"], r["tokens_per_s"]) for r in mine if r.get("parameters") and r.get("tokens_per_s")]
        if pairs:
            ax.scatter(*zip(*pairs), color=_colour(method), label=method.upper())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("training tokens / s (per trial)")
    ax.set_title("training throughput against size")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_teacher_cost(cost_curves: dict[str, list[tuple[int, float, float]]], data_sizes: list[int],
                      path: Path) -> Path:
    """Cumulative teacher tokens (and dollars, when priced) against training episodes, per data group."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    priced = any(usd > 0 for curve in cost_curves.values() for _, _, usd in curve)
    for key, curve in cost_curves.items():
        episodes = [c[0] for c in curve]
        values = [c[2] if priced else c[1] for c in curve]
        ax.plot(episodes, values, "o-", markersize=3, label=key)
    for size in data_sizes:
        ax.axvline(size, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training episodes (dotted: the study's data sizes)")
    ax.set_ylabel("teacher cost (USD)" if priced else "teacher tokens (input + output)")
    ax.set_title("teacher cost against data size")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_all(study_dir: Path, rows: list[dict[str, Any]], metric: str, fits: dict[str, Any], against: str,
             teacher: dict[str, dict[str, Any]], cost_curves: dict[str, list[tuple[int, float, float]]]
             ) -> dict[str, Path]:
    other = "training_flops" if against == "parameters" else "parameters"
    fits_for = {against: fits, other: fit_by_method(rows, metric, other)}
    return {
        "quality_vs_parameters": plot_quality(rows, metric, "parameters", fits_for["parameters"], teacher,
                                              study_dir / "quality_vs_parameters.png"),
        "quality_vs_compute": plot_quality(rows, metric, X_AXES["training_flops"], fits_for["training_flops"],
                                           teacher, study_dir / "quality_vs_compute.png"),
        "throughput_vs_size": plot_throughput(rows, study_dir / "throughput_vs_size.png"),
        "teacher_cost_vs_data": plot_teacher_cost(cost_curves, sorted({r["data_size"] for r in rows}),
                                                  study_dir / "teacher_cost_vs_data.png"),
    }
