"""Answer extraction on tricky numerals, exact match and DROP-style F1 on known cases."""

import pytest

from generation.datasets.answers import after_marker, extract_numeric_answer, find_numbers, format_number, parse_number
from generation.datasets.metrics import exact_match, normalise_answer, token_f1


@pytest.mark.parametrize("text, expected", [
    ("3.5", 3.5),                                  # the seed code's bug: never 3
    ("The rope is 3.5 m long.", 3.5),
    ("1,234,567 people", 1234567),
    ("$1,234.50 per week", 1234.5),
    ("-7 degrees", -7),
    ("\u221212", -12),                             # unicode minus
    ("3/4 of a cup", 0.75),
    (".5 kg", 0.5),
    ("It costs 18 dollars.", 18),                  # a full stop is not a decimal point
    ("50%", 50),
])
def test_parse_number(text, expected):
    assert parse_number(text) == pytest.approx(expected)


def test_binary_minus_is_not_a_sign():
    assert find_numbers("10-3 = 7") == [10, 3, 7]
    assert find_numbers("(4)-2") == [4, 2]


def test_marker_wins_over_last_number():
    assert extract_numeric_answer("Ben has 12 + 5 = 17.\nFinal answer: 3.5 kg. Checked 4 times") == 3.5
    assert extract_numeric_answer("so 2 * 9 = 18\n#### 1,800") == 1800
    assert extract_numeric_answer("The answer is -0.25.") == -0.25
    assert extract_numeric_answer("first 3 then 4") == 4
    assert extract_numeric_answer("no numbers") is None
    assert after_marker("Final answer: Paris.") == "Paris"


def test_format_number():
    assert (format_number(2.0), format_number(3.5), format_number(-4)) == ("2", "3.5", "-4")


def test_exact_match_normalises_like_drop():
    assert exact_match("The Beatles.", "beatles") == 1.0
    assert exact_match("2.0", "2") == 1.0
    assert exact_match("1,000", "1000") == 1.0
    assert exact_match("Paris", ["London", "paris"]) == 1.0
    assert exact_match("Paris France", "Paris") == 0.0
    assert exact_match(None, "x") == 0.0
    assert normalise_answer("  An  Apple, a day ") == "apple day"


def test_token_f1_known_cases():
    assert token_f1("Eiffel Tower", "the Eiffel tower") == 1.0
    assert token_f1("Paris France", "Paris") == pytest.approx(2 / 3)    # p=1/2, r=1
    assert token_f1("John Smith", ["Smith", "John Smith"]) == 1.0        # best over golds
    assert token_f1("Jane Doe", "John Smith") == 0.0
    assert token_f1("13 apples", "12 apples") == 0.0                    # DROP: wrong number -> 0
    assert token_f1("12 apples", "12") == pytest.approx(2 / 3)
    assert token_f1(None, "x") == 0.0
    with pytest.raises(ValueError, match="no gold"):
        token_f1("x", [])
