"""Config of the teacher backend: which backend, which model, and how hard to push the server.

The API key never lives here: `api_key_env` names the environment variable that holds it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from configs.base import StrictModel

_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProviderLimits(StrictModel):
    """The provider's rate limits, shared by every actor on every node (0 = no limit).

    Providers count over a window (`window_s`, 60 for "per minute"; some enforce the same rate over
    shorter windows): the limiter keeps any window of that length under the limit, minus `headroom`,
    leaving `jitter_s` for requests that reach the server later than they were granted.
    """

    requests_per_minute: int = Field(0, ge=0)
    input_tokens_per_minute: int = Field(0, ge=0)
    output_tokens_per_minute: int = Field(0, ge=0)
    window_s: float = Field(60.0, gt=0.0, le=3600.0)
    headroom: float = Field(0.05, ge=0.0, lt=0.5, description="fraction of each limit kept as burst slack")
    jitter_s: float = Field(0.2, ge=0.0, description="grant-to-arrival delay the limit must survive")
    chars_per_token: float = Field(4.0, gt=0.0, description="prompt-size estimate before the server counts")

    @property
    def active(self) -> bool:
        return bool(self.requests_per_minute or self.input_tokens_per_minute or self.output_tokens_per_minute)

    @model_validator(mode="after")
    def _check_window(self) -> ProviderLimits:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            per_minute = getattr(self, name)
            if per_minute and per_minute * self.window_s / 60.0 < 2:
                raise ValueError(f"teacher.limits.{name}={per_minute} allows fewer than 2 per window of "
                                 f"{self.window_s}s; use a longer window_s (the provider's own) or a higher limit")
        return self


class ModelPrice(StrictModel):
    """Dollars per 1,000 tokens of one model."""

    input_per_1k: float = Field(0.0, ge=0.0)
    output_per_1k: float = Field(0.0, ge=0.0)


class CacheConfig(StrictModel):
    """The response cache: a reply once paid for is never paid for again (rerun, resume, shared path)."""

    mode: Literal["auto", "file", "actor", "off"] = Field(
        "auto", description="file: every actor opens the SQLite file (one host or a lock-safe local FS); "
                            "actor: one Ray actor on the driver's node owns it (multi-node); "
                            "auto: actor when the cluster has more than one node, else file")
    path: str | None = Field(None, description="SQLite file; default teacher_cache.sqlite in the job's data directory. "
                                               "Point several runs at one file to share answers")


class TeacherConfig(StrictModel):
    """One teacher backend. `concurrency` is per actor (the adaptive ceiling); `limits` are cluster-wide.

    Backends: expert (built-in, offline), openai (any OpenAI-compatible HTTP API), replay (recorded
    replies from `replay_path`, JSONL keyed by prompt hash), hf (a local Hugging Face model at `model`,
    batched `generate`; vLLM when installed and `hf_engine` allows).
    """

    # Someone may paste the key itself into `api_key_env`: keep input values out of error text.
    model_config = ConfigDict(hide_input_in_errors=True)

    backend: Literal["expert", "openai", "replay", "hf"] = "expert"
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
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="price table by model name (a served name such as "
                                          "gpt-4o-mini-2024-07-18 matches its longest listed prefix); "
                                          "models not listed cost price_per_1k_input/output")
    limits: ProviderLimits = ProviderLimits()
    cache: CacheConfig = CacheConfig()
    adaptive_concurrency: bool = Field(True, description="halve in-flight requests on a 429, regrow on success")
    min_concurrency: int = Field(1, ge=1)
    replay_path: str | None = Field(None, description="JSONL of recorded replies (backend=replay)")
    hf_engine: Literal["auto", "transformers", "vllm"] = "auto"
    hf_batch_size: int = Field(16, ge=1)
    hf_device: str | None = None

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
        if self.backend == "replay" and not self.replay_path:
            raise ValueError("teacher.backend=replay needs teacher.replay_path (a JSONL of recorded replies)")
        if self.min_concurrency > self.concurrency:
            raise ValueError(f"teacher.min_concurrency ({self.min_concurrency}) must be <= "
                             f"teacher.concurrency ({self.concurrency})")
        return self
