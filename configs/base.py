"""The base class of every config section: unknown keys are errors, not silently ignored."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section. `extra="forbid"` makes a mistyped key fail loudly at load time."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
