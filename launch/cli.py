"""`logic-distill`: the front door.

    logic-distill run configs/quickstart.yaml                 # whole pipeline, offline on CPU
    logic-distill run configs/quickstart.yaml eval.episodes=50 training.num_processes=1
    logic-distill generate configs/quickstart.yaml --run-dir runs/exp1
    logic-distill train --run-dir runs/exp1 --method ld training.epochs=4
    logic-distill evaluate --run-dir runs/exp1 eval.episodes=400
    logic-distill study configs/studies/cpu_scaling.yaml      # scaling study: sizes x methods x seeds
    logic-distill sizes                                       # parameters and FLOPs of the size presets
    logic-distill ltr configs/ltr_quickstart.yaml             # Learn-to-Reason rounds + ablations
    logic-distill doc configs/doc_quickstart.yaml             # Divide-or-Conquer: every pipeline, accuracy + cost
    logic-distill doc configs/doc_quickstart.yaml --until samples --run-dir runs/doc1   # teacher samples only

Arguments after the config file are `a.b=c` overrides. `train` and `evaluate` read the resolved
config saved in `--run-dir` (overrides still apply on top).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from configs.loader import RESOLVED_NAME, ConfigError, load_config, save_resolved


def _offline_defaults() -> None:
    # No hub traffic unless asked for: a hub name costs ~25 s of retries on a closed network.
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logic-distill", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "Logic Distillation, every stage"), ("generate", "function base + teacher demonstrations"),
                       ("train", "fine-tune the students"), ("evaluate", "held-out evaluation and results"),
                       ("ltr", "Learn-to-Reason: exam, tailored feedback, rounds, ablations"),
                       ("doc", "Divide-or-Conquer: distil the decomposer, cost every pipeline")):
        p = sub.add_parser(name, help=text)
        p.add_argument("args", nargs="*", metavar="[CONFIG] KEY=VALUE", help="a YAML config, then overrides")
        p.add_argument("--run-dir", type=Path, default=None, help="run directory (default: a new one)")
        if name == "train":
            p.add_argument("--method", action="append", choices=["ld", "kd"],
                           help="student to train (repeat for several; default: ld and kd)")
        if name == "doc":
            p.add_argument("--until", choices=["samples"], default=None,
                           help="stop after this stage (samples: the teacher samples, committed unit by unit)")
    # parsed by launch/study_cli.py (own options); listed here so that --help names every command
    sub.add_parser("study", help="scaling study over student sizes, methods and seeds (Ray or --slurm)",
                   add_help=False)
    sub.add_parser("sizes", help="parameters and FLOPs of every size preset", add_help=False)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """The command line; `key=value` overrides may also come after the options (`--run-dir D a.b=c`):
    argparse takes positionals in one run only, so the ones after an option are collected here."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    stray = [token for token in extra if token.startswith("-") or "=" not in token]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.args = [*args.args, *extra]
    return args


def _check_training_files(cfg) -> None:
    """What config validation cannot see without reading files: an override DeepSpeed file must run the stage
    `training.zero_stage` says. Checked here so a conflict stops the command before any stage starts."""
    training = getattr(cfg, "training", None)
    if training is not None and training.deepspeed_config:
        from configs.resolved_training import check_stage_agrees, read_deepspeed_file
        from configs.training_schema import resolve_deepspeed_config

        try:
            source = resolve_deepspeed_config(training)
        except ValueError as exc:  # neither a shipped name nor a file
            raise ConfigError(str(exc)) from None
        check_stage_agrees(training, read_deepspeed_file(source), source)


def _config(args: argparse.Namespace):
    from configs.schema import RunConfig

    path, overrides = _split_args(args.args)
    if path is None and args.run_dir is not None and (args.run_dir / RESOLVED_NAME).exists():
        path = args.run_dir / RESOLVED_NAME
    if path is None and args.command in ("train", "evaluate"):
        raise ConfigError(f"{args.command} needs --run-dir of a run made by `generate` (or a config file)")
    if args.command == "ltr":
        from configs.ltr_schema import LtrRunConfig

        return load_config(path, overrides, LtrRunConfig)
    if args.command == "doc":
        from configs.doc_schema import DocRunConfig

        return load_config(path, overrides, DocRunConfig)
    return load_config(path, overrides, RunConfig)


def main(argv: list[str] | None = None) -> int:
    from generation.storage.secrets import install_redacting_excepthook, redact, secret_values

    _offline_defaults()
    install_redacting_excepthook()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("study", "sizes"):  # own parser and config: launch/study_cli.py
        from launch.study_cli import main as study_main

        return study_main(argv)
    args = _parse(argv)
    try:
        cfg = _config(args)
        _check_training_files(cfg)
    except ConfigError as exc:
        print(f"logic-distill: error: {redact(exc)}", file=sys.stderr)
        return 2
    from generation.storage.shards import PlanChanged
    from launch.train_launcher import TrainingFailed
    from ray_jobs.stages import StageError

    try:
        _dispatch(args, cfg)
    except (StageError, TrainingFailed, PlanChanged) as exc:
        print(f"logic-distill {args.command}: error: {redact(exc, secret_values(cfg))}", file=sys.stderr)
        return 1
    return 0


def _dispatch(args: argparse.Namespace, cfg) -> None:
    if args.command == "ltr":
        from launch.ltr import run_ltr

        run_ltr(cfg, args.run_dir)
        return
    if args.command == "doc":
        from launch.doc import run_doc

        run_doc(cfg, args.run_dir, args.until)
        return
    from generation.storage.tracking import Tracker
    from launch import ld

    run_dir = args.run_dir or ld.new_run_dir(cfg)
    if args.command == "run":
        ld.run_all(cfg, run_dir)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir)
    print(f"run directory: {run_dir}")
    tracker = Tracker(run_dir, cfg.wandb, args.command, config=cfg.model_dump(mode="json"))
    try:
        if args.command == "generate":
            ld.generate(cfg, run_dir, tracker)
        elif args.command == "train":
            ld.train_students(cfg, run_dir, args.method or ["ld", "kd"])
        else:
            results = ld.evaluate(cfg, run_dir, tracker)
            from ray_jobs.report import markdown_table

            print(markdown_table(results))
    finally:
        tracker.finish()


if __name__ == "__main__":
    sys.exit(main())
