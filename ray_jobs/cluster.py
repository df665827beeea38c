"""Connect to (or start) the Ray cluster a run uses."""

from __future__ import annotations

import os
from typing import Any

from generation.storage.secrets import public_env


def ensure_ray(ray_cfg: Any) -> None:
    import ray

    if ray.is_initialized():
        return
    address = ray_cfg.address or os.environ.get("RAY_ADDRESS")
    # Workers must import our packages and stay offline, wherever they run.
    # Secrets (WANDB_API_KEY, HF_TOKEN) stay out: Ray logs the runtime_env; local workers inherit them.
    env = {"env_vars": public_env(("HF_", "WANDB_", "TOKENIZERS_", "TORCH_EXTENSIONS"))}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=ray_cfg.num_cpus, include_dashboard=False, runtime_env=env, log_to_driver=False,
                 configure_logging=False)
