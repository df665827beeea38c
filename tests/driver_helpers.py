"""Killing a driver run as a subprocess mid-job, for the kill-and-resume tests.

    done_before = kill_when_committed(command, log, data_dir, server, at_least=2)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from generation.storage.shards import MANIFEST_NAME, Manifest


def wait_for(predicate, timeout_s: float, what: str, log=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.2)


def quiet(server, settle_s: float = 1.5) -> None:
    """Wait until the server's answered count stops moving: every answer given has reached its client."""
    last = None
    while (now := server.stats()) != last:
        last = now
        time.sleep(settle_s)


def committed(data_dir) -> int:
    """Units (tasks) the manifest of `data_dir` vouches for so far."""
    return len(Manifest(data_dir).entries) if (data_dir / MANIFEST_NAME).exists() else 0


def kill_when_committed(command: list[str], log, data_dir, server, at_least: int, timeout_s: float = 240,
                        hang_fraction: float = 1.0, **popen: Any) -> int:
    """Run `command` (output to `log`; `popen` e.g. cwd, env) until `at_least` units are committed, then make
    the server hold `hang_fraction` of new requests, wait until every answer it gave has reached the job, and
    `kill -9` the driver and its process group. Returns the units committed by then."""
    with log.open("w") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen,
                                  start_new_session=True)  # its own process group: Ray's helpers die with it
    try:
        wait_for(lambda: committed(data_dir) >= at_least, timeout_s, f"{at_least} committed unit(s)", log)
        server.set_faults(hang_fraction=hang_fraction)  # from now on (those) requests wait: stuck mid-unit
        quiet(server)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return committed(data_dir)


def kill_then_rerun(command: list[str], log, data_dir, server, at_least: int, units: int,
                    timeout_s: float = 600) -> tuple[int, int, dict[str, int]]:
    """`kill -9` mid-job (`kill_when_committed`), then the same command to its end with the server healthy.
    Returns (units committed before the kill, answers the server had given by then, answers per prompt)."""
    done_before = kill_when_committed(command, log, data_dir, server, at_least)
    assert at_least <= done_before < units, log.read_text()[-2000:]
    answered_before = server.stats()["ok"]
    server.set_faults(hang_fraction=0.0)
    second = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return done_before, answered_before, server.answered_per_prompt()
