"""The questions of a Learn-to-Reason run: warm-up, exam (train) and held-out splits, as `QAItem`s.

Built in: the arithmetic word problems (disjoint seed ranges per split, gold rationale from the
generator). For real use: GSM8K (train.jsonl / test.jsonl) or SVAMP (one file, split by a seeded
shuffle) through `generation.datasets.loaders`.
"""

from __future__ import annotations

import random
import re

from generation.ltr.prompts import ANSWER_PHRASE
from generation.datasets.arithmetic import ArithmeticDifficulty, make_problems
from generation.datasets.loaders import DatasetError, QAItem, load_gsm8k, load_svamp

SPLITS = ("warmup", "train", "heldout")
SPLIT_SEED_STRIDE = 1_000_000  # arithmetic seeds: split i uses [base + i * stride, ...)
CALCULATOR = re.compile(r"<<[^>]*>>")


def arithmetic_items(n: int, first_seed: int, difficulty: ArithmeticDifficulty) -> list[QAItem]:
    return [QAItem(uid=p.uid, question=p.question, answers=(str(p.answer),), metric="numeric_em",
                   source="arithmetic", rationale=p.rationale()) for p in make_problems(n, first_seed, difficulty)]


def with_answer_sentence(item: QAItem) -> QAItem:
    """A dataset rationale in the student's format: calculator notes removed, answer sentence last."""
    if not item.rationale:
        return item
    text = " ".join(CALCULATOR.sub("", item.rationale).split())
    return QAItem(item.uid, item.question, item.answers, item.metric, item.source,
                  f"{text} {ANSWER_PHRASE} {item.answer}.", item.meta)


def load_splits(task) -> dict[str, list[QAItem]]:
    """{warmup, train, heldout} for the `task` section (configs.ltr_schema.LtrTaskConfig)."""
    sizes = {"warmup": task.warmup_questions, "train": task.train_questions, "heldout": task.heldout_questions}
    if task.source == "arithmetic":
        a = task.arithmetic
        difficulty = ArithmeticDifficulty(a.min_steps, a.max_steps, a.max_base, tuple(a.shapes), a.distractors,
                                          tuple(a.kinds))
        return {name: arithmetic_items(sizes[name], task.seed * 10 * SPLIT_SEED_STRIDE + i * SPLIT_SEED_STRIDE,
                                       difficulty) for i, name in enumerate(SPLITS)}
    if task.source == "gsm8k":
        pool, heldout = load_gsm8k(task.train_path), load_gsm8k(task.test_path)
    else:
        pool = load_svamp(task.train_path)
        random.Random(task.seed).shuffle(pool)
        heldout, pool = pool[:sizes["heldout"]], pool[sizes["heldout"]:]
    need = sizes["warmup"] + sizes["train"]
    if len(pool) < need or len(heldout) < sizes["heldout"]:
        raise DatasetError(f"task.train_path {task.train_path}: {len(pool)} training and {len(heldout)} held-out "
                           f"questions, fewer than asked ({need} and {sizes['heldout']})")
    pool = [with_answer_sentence(item) for item in pool]
    return {"warmup": pool[:sizes["warmup"]], "train": pool[sizes["warmup"]:need],
            "heldout": heldout[:sizes["heldout"]]}
