"""Question-answering datasets from local files, in their original formats, as `QAItem`s.

    load_gsm8k("data/gsm8k/test.jsonl")      # JSON lines: question, answer ending "#### <number>"
    load_svamp("data/svamp/SVAMP.json")      # JSON array: Body, Question, Answer
    load_drop("drop_dataset_dev.json")       # {passage_id: {passage, qa_pairs: [{question, answer, ...}]}}
    load_bamboogle("bamboogle.csv")          # CSV with columns Question, Answer

Every problem (missing file, missing field, unreadable gold answer) is a `DatasetError` that names
the file and the line or record.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from generation.datasets.answers import format_number, parse_number

Metric = Literal["numeric_em", "em", "f1"]


class DatasetError(ValueError):
    """A dataset file that cannot be read as its format says."""


@dataclass(frozen=True)
class QAItem:
    uid: str
    question: str
    answers: tuple[str, ...]  # every accepted gold answer (DROP has several)
    metric: Metric
    source: str
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def answer(self) -> str:
        return self.answers[0]


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    return path


def _read_json(path: Path, kind: type, shape: str):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, kind):
        raise DatasetError(f"{path}: expected {shape}")
    return data


def _limit(items: list[QAItem], limit: int | None) -> list[QAItem]:
    return items if limit is None else items[:limit]


def gsm8k_gold(answer_field: str, where: str) -> str:
    """The number after "####" of a GSM8K answer field, canonically written ("1,000" -> "1000")."""
    head, sep, tail = answer_field.rpartition("####")
    value = parse_number(tail) if sep else None
    if value is None:
        raise DatasetError(f"{where}: answer does not end with '#### <number>': {answer_field[-60:]!r}")
    return format_number(value)


def load_gsm8k(path: str | Path, limit: int | None = None) -> list[QAItem]:
    path = _existing(path)
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("question", "answer")):
            raise DatasetError(f"{where}: a GSM8K row needs string fields 'question' and 'answer'")
        items.append(QAItem(uid=f"gsm8k-{n}", question=row["question"], answers=(gsm8k_gold(row["answer"], where),),
                            metric="numeric_em", source="gsm8k", rationale=row["answer"].rpartition("####")[0].strip()))
        if limit is not None and len(items) >= limit:
            break
    return items


def load_svamp(path: str | Path, limit: int | None = None) -> list[QAItem]:
    rows = _read_json(_existing(path), list, "SVAMP: a JSON array of problems")
    items = []
    for i, row in enumerate(rows):
        try:
            question = f"{row['Body'].strip()} {row['Question'].strip()}"
            answer = format_number(float(row["Answer"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{path}: problem {i}: needs Body, Question and a numeric Answer ({exc!r})") from None
        items.append(QAItem(uid=str(row.get("ID", f"svamp-{i}")), question=question, answers=(answer,),
                            metric="numeric_em", source="svamp"))
    return _limit(items, limit)


def drop_answer_text(answer: dict[str, Any]) -> str | None:
    """A DROP answer object as text: its number, else its spans joined, else its date; None when empty."""
    if not isinstance(answer, dict):
        return None
    if str(answer.get("number", "")).strip():
        return str(answer["number"]).strip()
    spans = [s for s in answer.get("spans") or [] if str(s).strip()]
    if spans:
        return " ".join(spans)
    date = answer.get("date") or {}
    parts = [str(date.get(k, "")).strip() for k in ("day", "month", "year")]
    return " ".join(p for p in parts if p) or None


def load_drop(path: str | Path, limit: int | None = None) -> list[QAItem]:
    path = _existing(path)
    passages = _read_json(path, dict, "DROP: a JSON object of passage_id -> {passage, qa_pairs}")
    items = []
    for pid, entry in passages.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("passage"), str):
            raise DatasetError(f"{path}: passage {pid!r} has no 'passage' text")
        for j, qa in enumerate(entry.get("qa_pairs") or []):
            golds = [drop_answer_text(a) for a in [qa.get("answer"), *(qa.get("validated_answers") or [])]]
            golds = list(dict.fromkeys(g for g in golds if g))
            if not golds or not isinstance(qa.get("question"), str):
                raise DatasetError(f"{path}: passage {pid!r} question {j}: needs a question and a non-empty answer")
            items.append(QAItem(uid=str(qa.get("query_id", f"{pid}-{j}")),
                                question=f"{entry['passage'].strip()}\n\n{qa['question'].strip()}",
                                answers=tuple(golds), metric="f1", source="drop", meta={"passage_id": pid}))
    return _limit(items, limit)


def load_bamboogle(path: str | Path, limit: int | None = None) -> list[QAItem]:
    path = _existing(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "question" not in columns or "answer" not in columns:
            raise DatasetError(f"{path}: Bamboogle CSV needs columns Question and Answer, found {reader.fieldnames}")
        items = []
        for n, row in enumerate(reader, 2):
            question, answer = (row[columns["question"]] or "").strip(), (row[columns["answer"]] or "").strip()
            if not question or not answer:
                raise DatasetError(f"{path}:{n}: empty Question or Answer")
            items.append(QAItem(uid=f"bamboogle-{n - 1}", question=question, answers=(answer,), metric="f1",
                                source="bamboogle"))
    return _limit(items, limit)


LOADERS = {"gsm8k": load_gsm8k, "svamp": load_svamp, "drop": load_drop, "bamboogle": load_bamboogle}


def load_dataset_file(kind: str, path: str | Path, limit: int | None = None) -> list[QAItem]:
    if kind not in LOADERS:
        raise DatasetError(f"unknown dataset format {kind!r}; expected one of {', '.join(LOADERS)}")
    return LOADERS[kind](path, limit)
