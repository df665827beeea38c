"""Kill a driver (a subprocess in its own session) while it is stuck on the test server, for resume tests.

The server first holds new requests (`hang_fraction`), then we wait until its answered count stops moving:
every answer it gave has reached the driver, so whatever the driver did not commit is in its cache only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def wait_until_quiet(server, settle_s: float = 1.5) -> None:
    """Wait until the server's counts stop moving: every answer given has reached its client."""
    last = None
    while (now := server.stats()) != last:
        last = now
        time.sleep(settle_s)


def kill_when_stuck(driver: subprocess.Popen, server, hang_fraction: float = 1.0) -> None:
    """Hold new requests, let given answers land, then SIGKILL the driver and its process group (Ray's too)."""
    try:
        server.set_faults(hang_fraction=hang_fraction)
        wait_until_quiet(server)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
