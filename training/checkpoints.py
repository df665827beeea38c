"""Training checkpoints: atomic `save_state` every N steps, keep the last K, find the one to resume.

Layout under the checkpoint root (default `<run_dir>/checkpoints/<job>`, on a filesystem every
node sees):

    run.json                  the W&B run id, written at the first start (a resume continues that run)
    step-00000200/            one complete checkpoint: accelerator.save_state (DeepSpeed shards per
        trainer_state.json    rank, RNG per rank) + our state: step, world size, fingerprint, run id
    .tmp-step-00000400/       a save in progress; renamed to step-00000400 only once complete

A directory named `step-*` is complete by construction (rename is atomic), so a job killed during
a save resumes from the previous checkpoint. `universal/` inside a checkpoint is its DeepSpeed
universal form, made on demand when a resume changes the process count or the ZeRO stage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from generation.storage.checksums import IntegrityError, seal_directory, verify_directory

TRAINER_STATE = "trainer_state.json"
RUN_INFO = "run.json"
STEP_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
DS_TAG = "pytorch_model"  # the tag accelerate's save_state gives the (first) DeepSpeed model


def step_dir_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file, fsync, then rename over `path`: readers see old or new, never half."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first."""
    found = []
    for path in Path(root).glob(f"{STEP_PREFIX}*"):
        suffix = path.name[len(STEP_PREFIX):]
        if path.is_dir() and suffix.isdigit() and (path / TRAINER_STATE).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / TRAINER_STATE).read_text())


def resolve_resume(resume: str, root: Path) -> Path | None:
    """The checkpoint to resume from: `auto` = the latest in `root` (None if there is none),
    `never` = None (refused when `root` already holds checkpoints), else a checkpoint path."""
    existing = list_checkpoints(root)
    if resume == "auto":
        return verified(existing[-1][1]) if existing else None
    if resume == "never":
        if existing:
            raise ValueError(f"training.resume=never but {root} already holds checkpoints "
                             f"({', '.join(p.name for _, p in existing)}); delete them, set training.resume=auto, "
                             f"or point training.checkpoint_dir elsewhere")
        return None
    path = Path(resume).expanduser().resolve()
    if not (path / TRAINER_STATE).is_file():
        raise ValueError(f"training.resume={resume!r} is not a complete checkpoint (no {TRAINER_STATE}); "
                         f"use auto, never, or a {STEP_PREFIX}N directory")
    return verified(path)


def verified(checkpoint: Path) -> Path:
    """`checkpoint`, once every file matches the checksums written when it was saved.

    A corrupted or cut-short checkpoint is refused, never silently resumed from."""
    try:
        verify_directory(checkpoint)
    except IntegrityError as exc:
        older = [p.name for _, p in list_checkpoints(checkpoint.parent) if p != checkpoint]
        hint = f"; resume from an older one with training.resume={checkpoint.parent / older[-1]}" if older else ""
        raise ValueError(f"checkpoint {checkpoint} is corrupted: {exc}{hint}") from None
    return checkpoint


def clean_partial_saves(root: Path) -> None:
    """Remove saves that a killed job left half-written (rank 0, before training starts)."""
    for path in Path(root).glob(f"{TMP_PREFIX}{STEP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def prune(root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints; returns what was deleted."""
    doomed = [path for _, path in list_checkpoints(root)[:-keep_last]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def save_checkpoint(accelerator, root: Path, step: int, trainer_state: dict[str, Any], keep_last: int) -> Path:
    """Every rank writes its part into a temporary directory; rank 0 adds the trainer state and
    renames it into place, then prunes. A collective: every rank must call it."""
    root = Path(root)
    final, tmp = root / step_dir_name(step), root / f"{TMP_PREFIX}{step_dir_name(step)}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / TRAINER_STATE, {**trainer_state, "step": step})
        seal_directory(tmp)  # checked on resume: a corrupted checkpoint is refused, not used
        if final.exists():  # a step re-done after resuming from an earlier checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        prune(root, keep_last)
    accelerator.wait_for_everyone()
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between a checkpoint's fingerprint and this run's."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def universal_dir(checkpoint: Path) -> Path:
    return Path(checkpoint) / "universal"


def convert_to_universal(checkpoint: Path) -> Path:
    """The DeepSpeed universal form of `checkpoint` (made once, atomically), loadable on any number of
    processes and any ZeRO stage. Runs DeepSpeed's own converter in a subprocess."""
    out_root = universal_dir(checkpoint)
    if (out_root / DS_TAG / "zero").is_dir():
        return out_root
    tmp_root = Path(checkpoint) / f"{TMP_PREFIX}universal"
    shutil.rmtree(tmp_root, ignore_errors=True)
    tmp_root.mkdir()
    command = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal",
               "--input_folder", str(Path(checkpoint) / DS_TAG), "--output_folder", str(tmp_root / DS_TAG),
               "--num_extract_workers", "1", "--num_merge_workers", "1", "--inject_missing_state"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"converting {checkpoint} to a DeepSpeed universal checkpoint failed:\n"
                           + (done.stdout + done.stderr)[-3000:])
    os.replace(tmp_root, out_root)
    return out_root
