"""W&B settings of a run."""

from typing import Literal

from configs.base import StrictModel


class WandbConfig(StrictModel):
    """Where and how runs are logged. `mode=offline` writes real runs without network."""

    mode: Literal["online", "offline", "disabled"] = "offline"
    project: str = "logic-distill"
    entity: str | None = None
    group: str | None = None
