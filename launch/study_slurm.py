"""A study as SLURM jobs instead of Ray: prepare the data once, an array of trials, then the report.

`write_slurm(plan, ...)` writes `<study_dir>/slurm/`: `trials.txt` (one unfinished trial per line),
`prepare.sbatch`, `trials.sbatch` (an array, one task per line of trials.txt), `report.sbatch` and
`submit.sh`, which submits the three with dependencies. Every command is `logic-distill study` on the
study's resolved config, so an array task skips a trial that already has its result marker.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ray_jobs.study import StudyPlan
from ray_jobs.sweep import finished_result


def _header(plan: StudyPlan, job: str, cpus: float, gpus: float, log_name: str, array: str | None = None
            ) -> list[str]:
    slurm = plan.study.slurm
    lines = ["#!/bin/bash", f"#SBATCH --job-name={plan.study.study.name}-{job}", "#SBATCH --ntasks=1",
             f"#SBATCH --cpus-per-task={max(1, int(round(cpus)))}", f"#SBATCH --time={slurm.time}",
             f"#SBATCH --output={plan.study_dir / 'slurm' / log_name}"]
    if array:
        lines.append(f"#SBATCH --array={array}")
    if gpus:
        lines.append(f"#SBATCH --gpus-per-task={int(gpus)}")
    if slurm.partition:
        lines.append(f"#SBATCH --partition={slurm.partition}")
    lines += [f"#SBATCH {extra}" for extra in slurm.extra_sbatch]
    return lines + ["set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}", *slurm.setup]


def study_command(plan: StudyPlan, *flags: str) -> str:
    resolved = plan.study_dir / "config.resolved.yaml"
    return shlex.join(["logic-distill", "study", str(resolved), "--study-dir", str(plan.study_dir), *flags])


def write_slurm(plan: StudyPlan) -> dict[str, Path]:
    """The sbatch files of the study's unfinished trials; returns their paths (submit.sh runs them)."""
    out = plan.study_dir / "slurm"
    out.mkdir(parents=True, exist_ok=True)
    res = plan.study.resources
    todo = [t.name for t in plan.trials if finished_result(plan.trial_dir(t.name)) is None]
    (out / "trials.txt").write_text("".join(f"{name}\n" for name in todo))
    throttle = f"%{plan.study.slurm.max_parallel}" if plan.study.slurm.max_parallel else ""
    files = {
        "prepare": _header(plan, "prepare", 2, 0, "prepare-%j.out") + [study_command(plan, "--prepare-only")],
        "trials": _header(plan, "trial", res.cpus_per_trial, res.gpus, "trial-%A_%a.out",
                          array=f"0-{max(len(todo) - 1, 0)}{throttle}") + [f'TRIAL=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(out / "trials.txt"))})',
           study_command(plan, "--trial") + ' "$TRIAL"'],
        "report": _header(plan, "report", 1, 0, "report-%j.out") + [study_command(plan, "--report-only")],
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = out / f"{name}.sbatch"
        paths[name].write_text("\n".join(lines) + "\n")
    submit = out / "submit.sh"
    submit.write_text("\n".join([
        "#!/bin/bash", "# Submit the study: data once, then the trial array, then the report (even if trials fail).",
        "set -euo pipefail", f"cd {shlex.quote(str(out))}",
        "prepare=$(sbatch --parsable prepare.sbatch)",
        "trials=$(sbatch --parsable --dependency=afterok:$prepare trials.sbatch)" if todo else "trials=$prepare",
        "sbatch --dependency=afterany:$trials report.sbatch", ""]))
    submit.chmod(0o755)
    paths["submit"] = submit
    return paths
