"""What the Grader decides without math-verify, and how it hands texts to math-verify.

``math`` answers: nothing is decided here. A completion goes to math-verify as
it is (its own extraction reads it); the only merge before math-verify is of
byte-identical texts. A task's reference is an answer, not a text: written bare
("2\\pi", "(1,2)") math-verify's extraction would misread it (it reads "2" from
"2\\pi"), so ``reference_text`` presents it as ``$2\\pi$``; a reference that
already holds math delimiters or a box, or is a plain number ("1,000", "28%"),
is passed as it is.

``integer`` and ``choice`` answers keep fast exact rules: ``canonical_form``
only trims, drops ``$`` delimiters, a final period, and commas that are valid
thousands separators ("1,000" -> "1000"; "1,2" and "1, 2" stay as they are);
it never deletes inner whitespace. Two plain numbers are equal exactly when
their canonical strings are; anything else on an integer task goes to
math-verify (as ``\\boxed{answer}``). Choice answers are letters of
``CHOICE_LETTERS``.
"""
from __future__ import annotations

import re

from ttrl_bench.types import CHOICE_LETTERS, AnswerType

_PLAIN_NUMBER = re.compile(r"(-?)(\d+)(?:\.(\d+))?")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_MATH_DELIMITED = re.compile(r"^\$+(.*?)\$+$|^\\\((.*)\\\)$|^\\\[(.*)\\\]$", re.DOTALL)
_LETTER = re.compile(rf"\(?([{CHOICE_LETTERS}{CHOICE_LETTERS.lower()}])\)?")
# Texts math-verify reads well as they are: something delimited or boxed, or a plain number.
_HAS_MATH_MARKUP = re.compile(r"\$|\\\(|\\\[|\\boxed|\\fbox")
_NUMBER_TEXT = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?\s*(?:\\?%|percent)?", re.IGNORECASE)


def canonical_form(answer: str, answer_type: AnswerType) -> str:
    """The canonical string of an ``integer`` or ``choice`` answer ("" = no answer)."""
    if answer_type == "math":
        raise ValueError("math answers have no canonical form: math-verify reads them as written")
    text = answer.strip()
    delimited = _MATH_DELIMITED.match(text)
    if delimited:
        text = next(g for g in delimited.groups() if g is not None).strip()
    if answer_type == "choice":
        letter = _LETTER.fullmatch(text)
        return letter.group(1).upper() if letter else text
    if text.endswith(".") and _PLAIN_NUMBER.fullmatch(text[:-1]):
        text = text[:-1]
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    return _canonical_number(text)


def is_plain_number(key: str) -> bool:
    return _PLAIN_NUMBER.fullmatch(key) is not None


def _canonical_number(text: str) -> str:
    """"007" -> "7", "2.50" -> "2.5", "3.0" -> "3", "-0" -> "0"; other strings unchanged."""
    number = _PLAIN_NUMBER.fullmatch(text)
    if not number:
        return text
    sign, whole, fraction = number.groups()
    whole = whole.lstrip("0") or "0"
    fraction = (fraction or "").rstrip("0")
    digits = f"{whole}.{fraction}" if fraction else whole
    return digits if digits == "0" else sign + digits


def boxed(answer: str) -> str:
    """An integer task's non-numeric answer as a text for math-verify."""
    return "\\boxed{%s}" % answer


def reference_text(reference: str) -> str:
    """A ``math`` reference as the text math-verify parses as gold (see the module docstring)."""
    text = reference.strip()
    if _HAS_MATH_MARKUP.search(text) or _NUMBER_TEXT.fullmatch(text):
        return text
    return f"${text}$"
