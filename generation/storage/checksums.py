"""Checksums for artefacts read by later stages: a file (`function_base.json` + `.sha256` beside it) or a
directory (an exported student: `checksums.json` listing every file's sha256 and size).

A later stage verifies before it loads, so a file corrupted or cut short on disk is refused with the
path and what changed, never silently used. Artefacts without checksums (made by older versions or
by hand) are accepted: `verify_*` returns False for them so callers can say so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from generation.storage.shards import file_sha256

CHECKSUMS_NAME = "checksums.json"


class IntegrityError(RuntimeError):
    """An artefact no longer matches the checksum written when it was made."""


def _fingerprint(path: Path) -> dict[str, object]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def seal_file(path: str | Path) -> Path:
    """Write `<path>.sha256` (JSON: sha256 and bytes) for one file; returns the sidecar's path."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    _write_atomically(sidecar, json.dumps(_fingerprint(path)))
    return sidecar


def verify_file(path: str | Path) -> bool:
    """True when `path` matches its sidecar, False when it has none; IntegrityError when it differs."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return False
    expected = json.loads(sidecar.read_text())
    if not path.is_file():
        raise IntegrityError(f"{path} is missing (its checksum {sidecar} is there)")
    _compare(path, expected, sidecar)
    return True


def seal_directory(directory: str | Path) -> Path:
    """Write `checksums.json` listing every file under `directory` (relative paths)."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS_NAME)
    table = {str(p.relative_to(directory)): _fingerprint(p) for p in files}
    out = directory / CHECKSUMS_NAME
    _write_atomically(out, json.dumps(table, indent=1, sort_keys=True))
    return out


def verify_directory(directory: str | Path) -> bool:
    """True when every file listed in `checksums.json` matches, False when there is no such file;
    IntegrityError naming each missing or changed file otherwise (extra files are allowed)."""
    directory = Path(directory)
    listing = directory / CHECKSUMS_NAME
    if not listing.is_file():
        return False
    problems = []
    for name, expected in json.loads(listing.read_text()).items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        try:
            _compare(path, expected, listing)
        except IntegrityError as exc:
            problems.append(str(exc))
    if problems:
        raise IntegrityError("; ".join(problems))
    return True


def _compare(path: Path, expected: dict, source: Path) -> None:
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise IntegrityError(f"{path} has {size} bytes, {expected['bytes']} when written "
                             f"(cut short or changed; see {source})")
    if file_sha256(path) != expected["sha256"]:
        raise IntegrityError(f"{path} does not match its sha256 in {source} (corrupted or changed)")
