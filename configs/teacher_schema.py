"""Config of the teacher backend: which backend, which model, and how hard to push the server.

The API key never lives here: `api_key_env` names the environment variable that holds it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from configs.base import StrictModel

_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TeacherConfig(StrictModel):
    """One teacher backend. `concurrency` is per actor; the cluster-wide rate limit lives in ray_jobs."""

    # Someone may paste the key itself into `api_key_env`: keep input values out of error text.
    model_config = ConfigDict(hide_input_in_errors=True)

    backend: Literal["expert", "openai"] = "expert"
    model: str = Field("expert-v1", min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0.0)
    max_retries: int = Field(5, ge=0, le=100)
    backoff_initial_s: float = Field(0.5, gt=0.0)
    backoff_max_s: float = Field(30.0, gt=0.0)
    concurrency: int = Field(8, ge=1, le=4096)
    price_per_1k_input: float = Field(0.0, ge=0.0)
    price_per_1k_output: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_consistency(self) -> TeacherConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"teacher.backoff_max_s ({self.backoff_max_s}) must be >= "
                f"teacher.backoff_initial_s ({self.backoff_initial_s})"
            )
        if self.api_key_env is not None and not _ENV_VAR_NAME.match(self.api_key_env):
            # Do not echo the value: it may be the secret itself.
            raise ValueError(
                "teacher.api_key_env must be the NAME of an environment variable "
                "(letters, digits, underscore), never the API key itself"
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"teacher.base_url must start with http:// or https://, got {self.base_url!r}")
        if self.backend == "openai" and self.base_url is None and self.api_key_env is None:
            raise ValueError(
                "teacher.backend=openai without base_url targets api.openai.com and needs "
                "teacher.api_key_env (e.g. OPENAI_API_KEY); set base_url for a local server"
            )
        return self
