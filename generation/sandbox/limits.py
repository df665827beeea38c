"""Sandbox limits live in `configs.sandbox_schema` (configs import nothing from generation)."""

from configs.sandbox_schema import DEFAULT_ALLOWED_IMPORTS, SandboxLimits

__all__ = ["DEFAULT_ALLOWED_IMPORTS", "SandboxLimits"]
