"""Dataset loaders on small sample files in their original formats (and the real GSM8K/SVAMP when present)."""

from pathlib import Path

import pytest

from generation.datasets.loaders import DatasetError, load_bamboogle, load_dataset_file, load_drop, load_gsm8k, load_svamp
from generation.datasets.metrics import token_f1

FIXTURES = Path(__file__).parent / "fixtures" / "doc"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_gsm8k_gold_answers_keep_separators_signs_and_decimals():
    items = load_gsm8k(FIXTURES / "gsm8k_sample.jsonl")
    assert [i.answer for i in items] == ["2400", "-3", "3.5"]
    assert items[0].metric == "numeric_em" and "1,200 * 2" in items[0].rationale
    assert load_gsm8k(FIXTURES / "gsm8k_sample.jsonl", limit=1)[0].uid == "gsm8k-1"


def test_gsm8k_without_marker_names_file_and_line():
    with pytest.raises(DatasetError, match=r"gsm8k_bad.jsonl:1: answer does not end with '#### <number>'"):
        load_gsm8k(FIXTURES / "gsm8k_bad.jsonl")


def test_drop_numbers_spans_dates_and_validated_answers():
    items = {i.uid: i for i in load_drop(FIXTURES / "drop_sample.json")}
    assert items["q1"].answers == ("21",) and items["q1"].metric == "f1"
    assert items["q2"].answers == ("John Smith", "Smith")
    assert items["q3"].answers == ("4 March 1801",)
    assert items["q2"].question.startswith("The Bears scored") and items["q2"].question.endswith("Who was the kicker?")
    assert token_f1("Smith", items["q2"].answers) == 1.0


def test_bamboogle_csv_and_bad_columns():
    items = load_bamboogle(FIXTURES / "bamboogle_sample.csv")
    assert [i.answer for i in items] == ["james madison", "Paris"]
    assert "Eiffel Tower stands, in one word" in items[1].question
    with pytest.raises(DatasetError, match="needs columns Question and Answer"):
        load_bamboogle(FIXTURES / "bamboogle_bad.csv")


def test_missing_file_and_unknown_format():
    with pytest.raises(DatasetError, match="not found"):
        load_gsm8k(FIXTURES / "nope.jsonl")
    with pytest.raises(DatasetError, match="unknown dataset format 'squad'"):
        load_dataset_file("squad", FIXTURES / "drop_sample.json")


@pytest.mark.skipif(not (SHARED / "gsm8k" / "test.jsonl").exists(), reason="shared GSM8K copy not present")
def test_real_gsm8k_and_svamp_files():
    gsm = load_gsm8k(SHARED / "gsm8k" / "test.jsonl")
    assert len(gsm) == 1319 and gsm[0].answer == "18"
    assert all(float(i.answer) == float(i.answer) for i in gsm)  # every gold parsed to a number
    svamp = load_svamp(SHARED / "svamp" / "SVAMP.json")
    assert len(svamp) == 1000 and svamp[0].answer == "51"
