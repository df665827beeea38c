"""The parent's handle on one sandbox worker process: start, one request at a time, kill.

Wall time is enforced here, outside the worker: a request that gets no answer in time
kills the process (it is then replaced by the caller).
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0  # interpreter start + allowed imports, on a busy machine
_PROTOCOL_SLACK_BYTES = 64 * 1024


class WorkerTimeout(Exception):
    """No answer within the deadline; the worker has been killed."""


class WorkerDied(Exception):
    """The worker exited (or was killed) before answering."""

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode


class WorkerOutputTooLarge(Exception):
    """The answer outgrew every legitimate size; the worker has been killed."""


def _death_description(returncode: int | None) -> str:
    if returncode is None:
        return "worker closed its output"
    if returncode < 0:
        try:
            return f"worker killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"worker killed by signal {-returncode}"
    return f"worker exited with status {returncode}"


class WorkerProcess:
    """One running `generation.sandbox.worker_main`. Not thread-safe: callers lock."""

    def __init__(self, limits: dict[str, Any]) -> None:
        self.limits = limits
        self._max_line = limits["max_output_bytes"] + _PROTOCOL_SLACK_BYTES
        self._scratch = tempfile.mkdtemp(prefix="logic-distill-sandbox-")
        env = {"PYTHONPATH": str(REPO_ROOT), "PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-s", "-m", "generation.sandbox.worker_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(REPO_ROOT),
            env=env,
            close_fds=True,
        )
        self._buffer = bytearray()
        try:
            hello = self.request({"limits": limits, "scratch": self._scratch}, STARTUP_SECONDS)
        except BaseException:
            self.kill()
            raise
        self.isolation: dict[str, Any] = hello.get("isolation", {})
        # the worker is already rooted (or sitting) in the empty folder: deleting it now leaves
        # nothing behind if this host dies, and a deleted folder admits no new files
        shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def request(self, message: dict[str, Any] | bytes, timeout: float) -> dict[str, Any]:
        """Send one message (a dict, or an already encoded JSON line) and wait for the answer."""
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        try:
            self._process.stdin.write(line + b"\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None
        return json.loads(self._read_line(time.monotonic() + timeout))

    def _read_line(self, deadline: float) -> bytes:
        fd = self._process.stdout.fileno()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return line
            if len(self._buffer) > self._max_line:
                self.kill()
                raise WorkerOutputTooLarge(f"worker answer exceeded {self._max_line} bytes")
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            if not ready:
                self.kill()
                raise WorkerTimeout()
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._died()
            self._buffer += chunk

    def _died(self) -> WorkerDied:
        try:  # let a dying worker finish, so its real exit status is reported
            self._process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        returncode = self._process.returncode
        return WorkerDied(_death_description(returncode), returncode)

    def kill(self) -> None:
        """Stop the worker now and remove its scratch folder; safe to call twice."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self._scratch, ignore_errors=True)

    def close(self) -> None:
        """Let the worker exit on end of input; kill it if it lingers."""
        try:
            self._process.stdin.close()
            self._process.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()
