"""OS-level isolation the sandbox worker applies to itself before any untrusted code runs.

Layers, each applied when the platform permits it (what was applied is reported back):
- a fresh network namespace (no interfaces but a downed loopback: no network at all);
- as root: chroot into an empty scratch folder, then setuid to `nobody` so that the
  process limits below bind (root ignores RLIMIT_NPROC) and no capabilities remain;
- rlimits: address space, no file growth (RLIMIT_FSIZE 0), no new processes, few fds,
  no core dumps; `no_new_privs` and not dumpable (no ptrace by other workers).
Stdlib only; the worker imports everything it needs before calling `harden_process`.
"""

import ctypes
import os
import resource

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
NOBODY_UID = 65534
NOBODY_GID = 65534
MAX_OPEN_FILES = 16


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def leave_network(libc: ctypes.CDLL) -> str:
    """Move into a new, empty network namespace; unprivileged users need a user namespace too."""
    if os.geteuid() == 0 and libc.unshare(CLONE_NEWNET) == 0:
        return "network namespace"
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "user + network namespace"
    return f"unavailable (errno {ctypes.get_errno()}); socket imports are still refused"


def _confine_files_and_drop_root(scratch_dir: str) -> dict[str, object]:
    if os.geteuid() != 0:
        os.chdir(scratch_dir)
        return {"chroot": False, "uid": os.getuid()}
    # the scratch folder is empty and root-owned (0o700): after the drop nothing is reachable
    os.chroot(scratch_dir)
    os.chdir("/")
    os.setgroups([])
    os.setgid(NOBODY_GID)
    os.setuid(NOBODY_UID)
    return {"chroot": True, "uid": os.getuid()}


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def apply_rlimits(memory_mb: int) -> None:
    """Limits that cannot be raised again: soft and hard are set together."""
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_FSIZE, 0)
    _set_limit(resource.RLIMIT_NPROC, 0)
    _set_limit(resource.RLIMIT_NOFILE, MAX_OPEN_FILES)
    _set_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)


def harden_process(*, memory_mb: int, scratch_dir: str) -> dict[str, object]:
    """Isolate the calling process; returns a description of what was applied."""
    libc = _libc()
    report: dict[str, object] = {"network": leave_network(libc)}
    report.update(_confine_files_and_drop_root(scratch_dir))
    # after the uid change: changing credentials resets the dumpable flag
    report["no_new_privs"] = libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    apply_rlimits(memory_mb)
    report["memory_mb"] = memory_mb
    return report
