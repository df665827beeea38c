"""`logic-distill study` and `logic-distill sizes`: scaling studies, and the size presets' figures.

    logic-distill study configs/studies/cpu_scaling.yaml                 # run (or resume) on Ray, then report
    logic-distill study configs/studies/cpu_scaling.yaml study.name=x resources.cpus=2
    logic-distill study configs/studies/cpu_scaling.yaml --slurm         # write sbatch files, run nothing
    logic-distill study CONFIG --prepare-only | --trial NAME | --report-only   # the SLURM steps
    logic-distill sizes [--vocab-size 2048] [--seq-len 512]              # parameters and FLOPs per preset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from configs.loader import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logic-distill", description="scaling studies and size presets",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    study = sub.add_parser("study", help="a grid of trials across student sizes, methods, data sizes, seeds")
    study.add_argument("config", type=Path, help="study YAML (configs/studies/*.yaml)")
    study.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the study config")
    study.add_argument("--study-dir", type=Path, default=None, help="default: <study.output_dir>/<study.name>")
    mode = study.add_mutually_exclusive_group()
    mode.add_argument("--slurm", action="store_true", help="write an sbatch array (+ submit.sh), run nothing")
    mode.add_argument("--prepare-only", action="store_true", help="generate the teacher data, nothing else")
    mode.add_argument("--trial", metavar="NAME", help="run one trial in this process (a SLURM array task)")
    mode.add_argument("--report-only", action="store_true", help="rebuild the report from finished trials")
    sizes = sub.add_parser("sizes", help="parameter count and training FLOPs per token of every size preset")
    sizes.add_argument("--vocab-size", type=int, default=2048)
    sizes.add_argument("--seq-len", type=int, default=512)
    return parser


def sizes_table(vocab_size: int, seq_len: int) -> str:
    from configs.training_schema import available_presets, load_preset
    from ray_jobs.study_report import markdown
    from training.model_size import count_parameters, training_flops_per_token

    rows = []
    for name in available_presets():
        preset = load_preset(name)
        size = count_parameters(preset, vocab_size)
        rows.append([name, preset.num_hidden_layers, preset.hidden_size, f"{preset.num_attention_heads}/{preset.kv_heads}",
                     size.total, size.non_embedding, training_flops_per_token(preset, vocab_size, seq_len)])
    rows.sort(key=lambda r: r[4])
    rows = [[*row[:4], *(f"{n:,}" for n in row[4:])] for row in rows]  # exact, not rounded
    return markdown(["preset", "layers", "hidden", "heads (q/kv)", "parameters", "non-embedding",
                     f"training FLOPs/token (T={seq_len})"], rows)


def run_study(plan) -> dict:
    """Data once per group, every unfinished trial on Ray, then the report."""
    from ray_jobs import study as st
    from ray_jobs.stages import console
    from launch.study_trial import run_trial
    from ray_jobs.cluster import ensure_ray
    from ray_jobs.sweep import run_sweep

    started = time.perf_counter()
    st.save_plan(plan)
    console.print(f"study directory: [bold]{plan.study_dir}[/] ({len(plan.trials)} trials, "
                  f"{len(plan.groups)} data group(s))")
    ensure_ray(plan.study.ray)
    teacher = st.prepare_data(plan)

    def done(name: str, result: dict | None, error: dict | None) -> None:
        if error is None:
            console.print(f"[green]trial {name} finished[/] in {result['wall_s']:.0f}s: "
                          f"{plan.study.study.metric}={result.get(plan.study.study.metric)}")
        else:
            console.print(f"[red]trial {name} failed[/]: {error['error'][:200]} (log: {error['log']})")

    outcome = run_sweep(st.sweep_items(plan), run_trial, plan.study.ray, on_done=done)
    if outcome.skipped:
        console.print(f"skipped {len(outcome.skipped)} finished trial(s): {', '.join(outcome.skipped)}")
    out = st.report(plan, teacher)
    console.print(out["markdown"].read_text())
    console.print(f"study wall time: {time.perf_counter() - started:.0f}s; report: {out['markdown']}, "
                  f"{out['csv']}, plots: {', '.join(str(p) for p in out['plots'].values())}")
    return {**out, "outcome": outcome}


def _study(args: argparse.Namespace) -> int:
    from ray_jobs import study as st

    plan = st.plan_study(st.load_study(args.config, args.overrides), args.study_dir)
    if args.slurm:
        from launch.study_slurm import write_slurm

        st.save_plan(plan)
        paths = write_slurm(plan)
        print(f"wrote {', '.join(str(p) for p in paths.values())}\nsubmit with: bash {paths['submit']}")
        return 0
    if args.prepare_only:
        st.save_plan(plan)
        st.prepare_data(plan)
        return 0
    if args.trial:
        return _one_trial(plan, args.trial)
    if args.report_only:
        print(st.report(plan)["markdown"].read_text())
        return 0
    outcome = run_study(plan)["outcome"]
    return 1 if outcome.failed else 0


def _one_trial(plan, name: str) -> int:
    from ray_jobs import study as st
    from launch.study_trial import run_trial
    from ray_jobs.sweep import finished_result, run_local

    [item] = [i for i in st.sweep_items(plan) if i.name == name] or [None]
    if item is None:
        raise ConfigError(f"no trial named {name!r} in this study; trials: {', '.join(t.name for t in plan.trials)}")
    if finished_result(item.folder) is not None:
        print(f"trial {name} already finished: {item.folder / 'result.json'}")
        return 0
    return 0 if run_local(item, run_trial) is not None else 1


def main(argv: list[str] | None = None) -> int:
    from generation.storage.secrets import redact

    args = _parser().parse_args(argv)
    if args.command == "sizes":
        print(sizes_table(args.vocab_size, args.seq_len))
        return 0
    try:
        return _study(args)
    except ConfigError as exc:
        print(f"logic-distill study: error: {redact(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
