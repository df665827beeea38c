"""Test-wide settings: offline, W&B offline, one thread per process (2-core machines)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


import sys

import pytest


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_running():
    """A test module that starts Ray in this process (a CLI command run in-process does, through
    ensure_ray) must not hand it to the next module, whose own `ray.init` would then fail."""
    yield
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
