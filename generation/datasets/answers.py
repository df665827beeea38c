"""Answers out of free text: numbers (thousands separators, decimals, signs, fractions, units) and marked answers.

`extract_numeric_answer("... Final answer: $1,234.50 per week")` -> 1234.5. A number is read whole:
"3.5" is 3.5 (never 3), "1,000" is 1000, "-7" is -7 but the "3" of "10-3" is 3. When a reply has an
answer marker ("Final answer:", "#### ", "The answer is") the number after the last marker wins;
otherwise the last number in the text.
"""

from __future__ import annotations

import math
import re

ANSWER_MARKERS = ("Final answer:", "####", "The answer is", "Answer:")

# A sign counts only where it cannot be a binary minus ("10-3"): not after a word character or ")".
NUMBER = re.compile(
    r"(?P<sign>(?<![\w)])[-\u2212\u2013](?=\s?\$?\s?[\d.]))?\s?\$?\s?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<dec>\.\d+)?(?!\d)"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d.]))?"
)


def _to_float(match: re.Match) -> float | None:
    whole, dec, den = match.group("int"), match.group("dec"), match.group("den")
    if whole is None and dec is None:
        return None
    value = float((whole or "0").replace(",", "") + (dec or ""))
    if den is not None and dec is None:
        if int(den) == 0:
            return None
        value /= int(den)
    return -value if match.group("sign") else value


def find_numbers(text: str) -> list[float]:
    """Every number in `text`, in order, each read whole (separators, decimals, sign, a/b fractions)."""
    if not isinstance(text, str):
        raise TypeError(f"find_numbers: expected text, got {type(text).__name__}")
    out = []
    for match in NUMBER.finditer(text):
        value = _to_float(match)
        if value is not None:
            out.append(value)
    return out


def parse_number(text: str) -> float | None:
    """The one number a short answer string states ("1,234", "$3.50", "-2 apples", "3/4"), else None."""
    numbers = find_numbers(text)
    return numbers[0] if numbers else None


def after_marker(text: str, markers: tuple[str, ...] = ANSWER_MARKERS) -> str | None:
    """The rest of the line after the last answer marker (case-insensitive), trailing full stop removed."""
    lowered = text.lower()
    best = max(((lowered.rfind(m.lower()), m) for m in markers), key=lambda found: found[0])
    if best[0] < 0:
        return None
    rest = text[best[0] + len(best[1]):].strip().splitlines()
    answer = rest[0].strip() if rest else ""
    return answer[:-1].rstrip() if answer.endswith(".") else answer


def extract_numeric_answer(text: str) -> float | None:
    """The number after the last answer marker, else the last number of the text, else None."""
    marked = after_marker(text)
    if marked is not None:
        return parse_number(marked)
    numbers = find_numbers(text)
    return numbers[-1] if numbers else None


def numbers_match(predicted: float | None, gold: float, rel_tol: float = 1e-6) -> bool:
    return predicted is not None and math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-9)


def format_number(value: float) -> str:
    """2.0 -> "2", 3.5 -> "3.5": how an answer is written back into text."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
