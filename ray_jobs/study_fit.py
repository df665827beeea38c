"""Power-law fit y = a * x^b by least squares in log-log space, with its uncertainty.

Pure numpy. The exponent's standard error comes from the ordinary least-squares residuals; its 95%
interval from a bootstrap over the points (resampled with replacement), which stays honest when a
few seeds per size make the residuals far from normal. Points with x <= 0 or y <= 0 have no
logarithm: they are dropped and counted, never silently clipped. `fit_by_method` fits one law per
method over a study's trial rows (shared by the report and the plots, so neither imports the other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

X_AXES = {"parameters": "parameters", "training_flops": "train_flops"}  # `against` -> trial-row column


@dataclass(frozen=True)
class PowerLawFit:
    coefficient: float  # a
    exponent: float  # b
    exponent_se: float  # OLS standard error of b (nan with only two distinct x)
    exponent_ci: tuple[float, float]  # bootstrap 95% interval of b
    r_squared: float  # in log-log space
    points: int  # used
    dropped: int  # x <= 0 or y <= 0

    def predict(self, x: np.ndarray | Sequence[float]) -> np.ndarray:
        return self.coefficient * np.asarray(x, dtype=float) ** self.exponent

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self, x_name: str = "N") -> str:
        low, high = self.exponent_ci
        return (f"y = {self.coefficient:.3g} * {x_name}^{self.exponent:.3f} (exponent s.e. {self.exponent_se:.3f}, "
                f"95% bootstrap CI [{low:.3f}, {high:.3f}], R^2 {self.r_squared:.2f}, {self.points} points"
                + (f", {self.dropped} dropped as <= 0)" if self.dropped else ")"))


def _least_squares(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(lx, ly, 1)
    return float(intercept), float(slope)


def fit_power_law(x: Sequence[float], y: Sequence[float], bootstrap: int = 2000, seed: int = 0) -> PowerLawFit:
    """Fit y = a x^b; needs at least two positive points with distinct x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"fit_power_law: {x.size} x values but {y.size} y values")
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    if np.unique(lx).size < 2:
        raise ValueError(f"fit_power_law: needs positive points at two or more distinct x; got {keep.sum()} "
                         f"positive point(s) at {np.unique(x[keep]).size} distinct x")
    intercept, slope = _least_squares(lx, ly)
    residuals = ly - (intercept + slope * lx)
    n = lx.size
    centred = ((lx - lx.mean()) ** 2).sum()
    se = float(np.sqrt((residuals ** 2).sum() / (n - 2) / centred)) if n > 2 else float("nan")
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = float(1 - (residuals ** 2).sum() / total) if total > 0 else 1.0
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(bootstrap):
        pick = rng.integers(0, n, n)
        if np.unique(lx[pick]).size >= 2:  # a resample at one x has no slope
            slopes.append(_least_squares(lx[pick], ly[pick])[1])
    low, high = (np.percentile(slopes, [2.5, 97.5]) if slopes else (float("nan"), float("nan")))
    return PowerLawFit(float(np.exp(intercept)), slope, se, (float(low), float(high)), r2, n, int((~keep).sum()))


def fit_by_method(rows: list[dict[str, Any]], metric: str, against: str) -> dict[str, PowerLawFit | str]:
    """One power law per method over all its trials (seeds are separate points); a reason when none fits."""
    column = X_AXES[against]
    fits: dict[str, PowerLawFit | str] = {}
    for method in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == method and r.get(column) and r.get(metric) is not None]
        try:
            fits[method] = fit_power_law([r[column] for r in mine], [r[metric] for r in mine])
        except ValueError as exc:
            fits[method] = f"no fit: {exc}"
    return fits
