"""Resource limits and the import allow-list for running teacher-written functions."""

from pydantic import Field, field_validator

from configs.base import StrictModel

DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = (
    "math",
    "collections",
    "heapq",
    "itertools",
    "functools",
    "random",
    "re",
    "string",
    "typing",
    "dataclasses",
    "statistics",
    "bisect",
    "operator",
)


class SandboxLimits(StrictModel):
    """Limits applied to every call of an untrusted function (and to loading its source)."""

    wall_seconds: float = Field(2.0, gt=0, description="wall-clock limit per call; the worker is killed past it")
    cpu_seconds: float = Field(2.0, gt=0, description="CPU-time limit per call, enforced inside the worker")
    memory_mb: int = Field(512, ge=64, description="address-space limit of the worker process")
    allowed_imports: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_IMPORTS))
    max_output_bytes: int = Field(1_000_000, gt=0, description="largest JSON-encoded return value accepted")

    @field_validator("allowed_imports")
    @classmethod
    def _names_are_modules(cls, names: list[str]) -> list[str]:
        for name in names:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"allowed_imports entry {name!r} is not a module name")
        return names
