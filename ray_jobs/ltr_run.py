"""Learn-to-Reason's rounds: warm-up, round-0 exam, then for each arm rounds of exam -> tailored feedback ->
training -> held-out evaluation, each a stage of the run's StageLog (`ray_jobs/ltr_rounds.py`).

A training job is launched by the callable the caller passes in (`launch/ltr.py`: in this process or as
its own `accelerate` job); everything else a round does is here, on Ray.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Callable

import yaml

from configs.loader import RESOLVED_NAME
from configs.ltr_schema import LtrLossSettings, LtrRunConfig
from generation.ltr.feedback import build_requests, warmup_requests
from generation.ltr.questions import load_splits
from generation.ltr.records import ExamRecord, LtrTrainingRecord
from generation.ltr.prompts import student_prompt
from generation.storage.shards import read_records, write_shard
from ray_jobs.stages import StageError, console
from ray_jobs.ltr_feedback import LtrTeacher, feedback_shards
from ray_jobs.ltr_rounds import StageLog, accuracy, run_exam, solved_share

ROUND0 = "r0"
# launches one training job: (run config file, data shards, start checkpoint, output dir, run dir, job name)
TrainingLauncher = Callable[[Path, list[Path], Path, Path, Path, str], Any]

def arm_plan(cfg: LtrRunConfig, arm: str) -> dict[str, Any]:
    """How an arm differs from the full method: rounds, tailoring, reflection weight, epochs per round."""
    rounds = cfg.rounds.num_rounds
    return {"rounds": 1 if arm == "one_round" else rounds,
            "tailored": arm != "no_tailoring",
            "loss": cfg.loss.model_copy(update={"reflection_weight": 0.0}) if arm == "no_reflection" else cfg.loss,
            # one round trained as long as all rounds together: more epochs alone vs. new exams
            "epochs": cfg.rounds.epochs * (rounds if arm == "one_round" else 1)}


class LtrRun:
    """One run's rounds for every arm; `launch_training` starts each training job (the front door's choice)."""

    def __init__(self, cfg: LtrRunConfig, run_dir: Path, *, launch_training: TrainingLauncher) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.launch_training = launch_training
        self.stages = StageLog(self.run_dir)
        self.splits = load_splits(cfg.task)
        self.teacher = LtrTeacher(cfg, self.run_dir)  # one for every stage that asks the teacher

    def _items(self, split: str) -> list[dict]:
        return [{"uid": q.uid, "question": q.question, "answer": q.answer} for q in self.splits[split]]

    def student(self, name: str) -> Path:
        return self.run_dir / "students" / name

    # --- stages -----------------------------------------------------------------------------------
    def build_initial(self) -> Path:
        from training.student_builder import build_student

        init = self.student("init")
        if not (init / "config.json").is_file():
            texts = [t for split in ("warmup", "train") for q in self.splits[split]
                     for t in (student_prompt(q.question), q.rationale or "")]
            build_student(self.cfg.student, texts, init, seed=self.cfg.run.seed)
        return init

    def warmup(self, init: Path) -> dict:
        """SFT on the warm-up questions' rationales (documented in docs/learn_to_reason.md)."""
        questions = self.splits["warmup"]
        if self.cfg.warmup.rationales == "teacher":
            folder = self.feedback_dir("warmup", tailored=False)
            stats = self.teacher.write_feedback(warmup_requests(questions, self.cfg.warmup.rationales_per_question),
                                                0, "warmup", folder, stage="ltr_warmup")
            paths = feedback_shards(folder)
        else:
            missing = [q.uid for q in questions if not q.rationale]
            if missing:
                raise StageError(f"warm-up questions without a gold rationale ({missing[:3]}...): this source has "
                                 "none (SVAMP); set warmup.rationales=teacher, or warmup.enabled=false and "
                                 "student.path to a pretrained student")
            paths, stats = [self.run_dir / "data" / "warmup.parquet"], {}
            _write_rows([{"prompt": student_prompt(q.question), "completion": q.rationale} for q in questions],
                        paths[0])
        return {**stats, **self.train("warmup", paths, init, self.student("warmup"), None, self.cfg.warmup.epochs)}

    def train(self, job: str, data: list[Path], start: Path, out: Path, loss: LtrLossSettings | None,
              epochs: float, learning_rate: float | None = None) -> dict:
        config_path = self.run_dir / "configs" / f"{job}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        training = {**self.cfg.training.model_dump(mode="json", exclude_unset=True), "epochs": epochs}
        if learning_rate is not None:
            training["learning_rate"] = learning_rate
        sections = {"student": self.cfg.student.model_dump(mode="json"), "training": training,
                    "wandb": self.cfg.wandb.model_dump(mode="json")}
        if loss is not None:
            sections["ltr_loss"] = loss.model_dump(mode="json")
        config_path.write_text(yaml.safe_dump(sections, sort_keys=False))
        console.rule(f"training {job}")
        self.launch_training(config_path, data, start, out, self.run_dir, job)
        summary = json.loads((out / "training_summary.json").read_text())
        return {"student": str(out), "train_loss": summary.get("final_loss"), "steps": summary.get("steps")}

    def evaluate(self, name: str, checkpoint: Path, round_index: int) -> dict:
        records = run_exam(self.cfg.ray, self.cfg.exam, checkpoint, self._items("heldout"), f"heldout-{name}",
                           round_index, 1, 0.0, self.cfg.run.seed)
        write_shard(records, self.run_dir / "eval" / f"{name}.parquet")
        result = {"heldout_accuracy": accuracy(records), "round": round_index}
        console.print(f"[bold]{name}[/]: held-out accuracy {result['heldout_accuracy']:.3f}")
        return result

    def exam(self, name: str, checkpoint: Path, round_index: int) -> dict:
        exam = self.cfg.exam
        seed = self.cfg.run.seed + zlib.crc32(name.encode())
        records = run_exam(self.cfg.ray, exam, checkpoint, self._items("train"), name, round_index, exam.samples,
                           exam.temperature, seed)
        write_shard(records, self.run_dir / "exams" / f"{name}.parquet")
        result = {"exam_accuracy": accuracy(records), "solved_share": solved_share(records),
                  "wrong_samples": sum(not r.correct for r in records)}
        console.print(f"exam {name}: sample accuracy {result['exam_accuracy']:.3f}, "
                      f"questions solved at least once {result['solved_share']:.3f}")
        return result

    def feedback(self, exam_name: str, tailored: bool, round_index: int) -> dict:
        exam = read_records([self.run_dir / "exams" / f"{exam_name}.parquet"], ExamRecord)
        fb = self.cfg.feedback
        items = build_requests(exam, tailored, fb.rationales_per_question, fb.negatives_per_question,
                               fb.include_correct)
        return self.teacher.write_feedback(items, round_index, exam_name, self.feedback_dir(exam_name, tailored),
                                           stage="ltr_feedback")

    def feedback_dir(self, exam_name: str, tailored: bool) -> Path:
        return self.run_dir / "data" / "feedback" / f"{exam_name}-{'tailored' if tailored else 'plain'}"

    # --- the rounds -------------------------------------------------------------------------------
    def run_arm(self, arm: str, warm: Path, round0: dict) -> list[dict]:
        plan = arm_plan(self.cfg, arm)
        history = [{"round": 0, **round0}]
        student, exam_name, exam_summary = warm, ROUND0, round0
        for r in range(1, plan["rounds"] + 1):
            feedback = self.stages.run(
                f"feedback-{exam_name}-{'tailored' if plan['tailored'] else 'plain'}",
                lambda: self.feedback(exam_name, plan["tailored"], r), self._skipped)
            job = f"{arm}-r{r}"
            data = feedback_shards(self.feedback_dir(exam_name, plan["tailored"]))
            trained = self.stages.run(f"train-{job}", lambda: self.train(
                job, data, student, self.student(job), plan["loss"], plan["epochs"], self.cfg.rounds.learning_rate),
                self._skipped)
            student = self.student(job)
            evaluated = self.stages.run(f"eval-{job}", lambda: self.evaluate(job, student, r), self._skipped)
            history.append({**feedback, **trained, **evaluated, "exam": exam_name,
                            "exam_accuracy": exam_summary["exam_accuracy"]})
            if r < plan["rounds"]:
                exam_summary = self.stages.run(f"exam-{job}", lambda: self.exam(job, student, r), self._skipped)
                exam_name = job
        return history

    def _skipped(self, name: str) -> None:
        console.print(f"[dim]stage {name}: already done, skipped")

    def run(self) -> dict[str, list[dict]]:
        with self.teacher:
            return self._run()

    def _run(self) -> dict[str, list[dict]]:
        init = self.build_initial()
        warm = self.student("warmup")
        if self.cfg.warmup.enabled:
            self.stages.run("warmup", lambda: self.warmup(init), self._skipped)
        else:
            warm = init
        round0 = self.stages.run(f"eval-{ROUND0}", lambda: self.evaluate(ROUND0, warm, 0), self._skipped)
        exam0 = self.stages.run(f"exam-{ROUND0}", lambda: self.exam(ROUND0, warm, 0), self._skipped)
        return {arm: self.run_arm(arm, warm, {**round0, **exam0}) for arm in self.cfg.arms()}


def _write_rows(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def training_rows(run_dir: Path) -> list[LtrTrainingRecord]:
    """Every tailored/plain training row of a run, with its lineage."""
    folders = sorted(p for p in (Path(run_dir) / "data" / "feedback").glob("*") if p.is_dir())
    return read_records([path for folder in folders for path in feedback_shards(folder)], LtrTrainingRecord)


def check_same_config(cfg: LtrRunConfig, run_dir: Path) -> None:
    """Finished stages are reused as they are: refuse to resume them under another config."""
    resolved = run_dir / RESOLVED_NAME
    if not resolved.is_file() or not StageLog(run_dir).finished():
        return
    before = yaml.safe_load(resolved.read_text())
    changed = sorted(k for k, v in cfg.model_dump(mode="json").items() if before.get(k) != v)
    if changed:
        raise StageError(f"{run_dir} holds stages of a run with another config (sections {', '.join(changed)} "
                         f"differ from {resolved}); resume with the same config, or use a new --run-dir")

