"""The pursuit game's config lives in `configs.task_schema` (configs import nothing from generation)."""

from configs.task_schema import INSTRUCTION_KINDS, PursuitConfig

__all__ = ["INSTRUCTION_KINDS", "PursuitConfig"]
