"""Secrets (API keys, tokens): where they may come from, and scrubbing them out of anything written.

Keys come only from environment variables: `teacher.api_key_env` names the teacher's, and well-known
names (`*_KEY`, `*_TOKEN`, `*_SECRET*`, `*_PASSWORD`) are treated as secret too. Text that leaves
the process (error messages, tracker config and metrics, log lines) goes through `redact` first, so a
provider that echoes the key back (OpenAI's 401 does) cannot put it on disk.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Iterable, Mapping

REDACTED = "***"
# Short values ("1", "true") would redact half of every message; real keys are long.
MIN_SECRET_LENGTH = 8
# Whole words of the name only: HF_TOKEN is a secret, TOKENIZERS_PARALLELISM is not.
_SECRET_NAME = re.compile(r"(^|_)(APIKEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)($|_)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable name looks like it holds a secret (WANDB_API_KEY, HF_TOKEN...)."""
    return bool(_SECRET_NAME.search(name))


def secret_env_names(config: Any = None, environ: Mapping[str, str] | None = None) -> set[str]:
    """Names of the environment variables holding secrets: the one the config names, plus well-known ones.

    `config` is a RunConfig, a TeacherConfig, or a dumped config dict (what trackers get)."""
    environ = os.environ if environ is None else environ
    names = {name for name in environ if is_secret_name(name)}
    named = _api_key_env_of(config)
    if named:
        names.add(named)
    return names


def _api_key_env_of(config: Any) -> str | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        teacher = config.get("teacher", config)
        return teacher.get("api_key_env") if isinstance(teacher, Mapping) else None
    teacher = getattr(config, "teacher", config)
    return getattr(teacher, "api_key_env", None)


def secret_values(config: Any = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values currently set, longest first (so a key containing another is redacted whole)."""
    environ = os.environ if environ is None else environ
    values = {environ.get(name, "") for name in secret_env_names(config, environ)}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: Any, secrets: Iterable[str] | None = None) -> str:
    """`str(text)` with every secret value replaced by `***` (default: the secrets in the environment)."""
    out = str(text)
    for value in secret_values() if secrets is None else secrets:
        if value and len(value) >= MIN_SECRET_LENGTH:
            out = out.replace(value, REDACTED)
    return out


def redact_data(data: Any, secrets: Iterable[str] | None = None) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with secret values redacted in every string."""
    secrets = list(secret_values() if secrets is None else secrets)
    if not secrets:
        return data
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, Mapping):
        return {redact(k, secrets) if isinstance(k, str) else k: redact_data(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v, secrets) for v in data)
    return data


def public_env(prefixes: tuple[str, ...], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables with the given prefixes, secrets left out (for configs that get logged,
    such as a Ray runtime_env; workers on the same host inherit the real environment anyway)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(prefixes) and not is_secret_name(k)}


def install_redacting_excepthook() -> None:
    """Tracebacks that reach the top of the process are printed with secrets redacted."""
    import traceback

    def hook(kind, value, tb):
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = hook
