"""What every stage of every method shares: the console that prints paths whole and the error a stage raises."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)  # paths are printed whole, never wrapped


class StageError(RuntimeError):
    """A stage cannot run or finish; the message says what is missing and where."""
