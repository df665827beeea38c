"""The response cache: a content-addressed SQLite table of teacher replies, safe for many processes.

Key = sha256 of (model, messages, sampling parameters, prompt-template version, parser version, and a
sample index when sampling is random), so a rerun, a resume after `kill -9`, or another run pointed
at the same file re-bills nothing already answered. The first answer stored for a key wins.

Concurrency: WAL mode (readers never block the writer) with a busy timeout, one connection per
process. WAL needs every process on the same host (shared memory); across nodes, put the file behind
one Ray actor (`ray_jobs/teacher_services.CacheServer`) instead of on a network file system.

    python -m generation.storage.cache export runs/x/data/teacher_cache.sqlite replies.jsonl  # for backend=replay
    python -m generation.storage.cache stats runs/x/data/teacher_cache.sqlite
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

CACHE_FORMAT = "teacher-cache-v1"
ENTRY_FIELDS = ("prompt_hash", "model", "text", "finish_reason", "input_tokens", "output_tokens", "cost_usd")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    prompt_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_by_prompt ON replies (prompt_hash);
"""


def cache_key(model: str, messages: list[dict[str, str]], sampling: dict[str, Any],
              template_version: str | None = None, parser_version: str | None = None,
              sample_index: int | None = None) -> str:
    """The content address of one teacher call."""
    canonical = json.dumps(
        {"format": CACHE_FORMAT, "model": model, "messages": [[m["role"], m["content"]] for m in messages],
         "sampling": sampling, "template": template_version, "parser": parser_version, "sample": sample_index},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """One process's connection to the cache file. Thread-safe (one lock; SQLite calls are short)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"response cache {self.path}: SQLite refused WAL mode (got {mode!r}); "
                               "put the cache on a local file system or use teacher.cache.mode=actor")
        # NORMAL in WAL mode survives a killed process (only a power cut may lose the last commits).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(f"SELECT key, {', '.join(ENTRY_FIELDS)} FROM replies WHERE key IN ({marks})",
                                    keys).fetchall()
        return {row[0]: dict(zip(ENTRY_FIELDS, row[1:])) for row in rows}

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.put_many([(key, entry)])

    def put_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        rows = [(key, *(entry[f] for f in ENTRY_FIELDS), time.time()) for key, entry in items]
        if not rows:
            return
        with self._lock:
            self._db.executemany(f"INSERT OR IGNORE INTO replies (key, {', '.join(ENTRY_FIELDS)}, created) "
                                 f"VALUES ({','.join('?' * (len(ENTRY_FIELDS) + 2))})", rows)

    # async faces, so a backend can use this cache and the Ray actor's client the same way
    async def aget(self, key: str) -> dict[str, Any] | None:
        return self.get(key)

    async def aput(self, key: str, entry: dict[str, Any]) -> None:
        self.put(key, entry)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def billing(self) -> dict[str, dict[str, float]]:
        """Everything ever paid for through this cache, per model: each answer counted once."""
        with self._lock:
            rows = self._db.execute("SELECT model, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd) "
                                    "FROM replies GROUP BY model ORDER BY model").fetchall()
        return {m: {"requests": n, "input_tokens": i, "output_tokens": o, "cost_usd": c} for m, n, i, o, c in rows}

    def export_jsonl(self, out: str | Path) -> int:
        """Recorded replies for the replay backend: the first answer per prompt hash."""
        with self._lock:
            rows = self._db.execute(
                "SELECT prompt_hash, text, finish_reason, input_tokens, output_tokens, model FROM replies "
                "WHERE rowid IN (SELECT MIN(rowid) FROM replies GROUP BY prompt_hash) ORDER BY rowid").fetchall()
        with Path(out).open("w", encoding="utf-8") as fh:
            for prompt_hash, text, finish, n_in, n_out, model in rows:
                fh.write(json.dumps({"prompt_hash": prompt_hash, "reply": text, "finish_reason": finish,
                                     "input_tokens": n_in, "output_tokens": n_out, "model": model}) + "\n")
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "stats":
        cache = ResponseCache(argv[1])
        print(json.dumps({"entries": len(cache), "billing": cache.billing()}, indent=1))
        return 0
    if len(argv) == 3 and argv[0] == "export":
        print(f"{ResponseCache(argv[1]).export_jsonl(argv[2])} replies -> {argv[2]}")
        return 0
    print("usage: python -m generation.storage.cache (export CACHE OUT.jsonl | stats CACHE)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
