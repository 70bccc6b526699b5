"""Final-answer extraction from a completion's text, one rule set per answer type.

Every extractor looks for the most explicit marker first and falls back to
weaker ones, always taking the *last* occurrence: models restate and correct
themselves, and the final statement is the one that counts.

- ``math``: math-verify's own extraction (its regexes and priorities, see
  ``worker.extract_target``): the answer is the span of the completion it reads,
  with its math delimiters (``"$10,455$"``, ``"\\boxed{1}, \\boxed{2}"``,
  ``"28 percent"``), so math-verify reads the span as it read the completion.
  The Grader never re-reads this string: it grades whole completions in its
  workers. Here it runs in this process, under math-verify's own 5 s timer in
  the main thread (none elsewhere: use the Grader for untrusted text).
- ``integer`` (GSM8K, the synthetic addition tasks): a boxed answer, else GSM8K's
  "#### X", else "the answer is X", else the last number in the text. Thousands
  separators are removed ("1,000" -> "1000").
- ``choice`` (GPQA): a boxed letter, else "answer is (B)" / "Answer: C", else the
  last parenthesised letter, else the last standalone capital; letters are those
  of ``CHOICE_LETTERS`` (A-J), except that a standalone "I" followed by a word is
  the pronoun.

``None`` means no answer: such samples form no class and never win a vote.
"""
from __future__ import annotations

import re

import signal
import threading

from ttrl_bench.errors import UsageError
from ttrl_bench.grading import worker as math_reader
from ttrl_bench.types import CHOICE_LETTERS, AnswerType

ANSWER_TYPES: tuple[str, ...] = ("math", "integer", "choice")

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\b")
# "final answer is X", "final answer: X", "the answer is X", "answer: X"; the
# longer phrases come first so that "final answer: X" is not read as "answer: X".
_ANSWER_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|the\s+answer\s+is|answer\s*:)\s*(?:[:=]\s*)?", re.IGNORECASE
)
_GSM8K_MARK = re.compile(r"####\s*")
# A number with optional thousands separators ("12,345" but not the list "1,2").
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_L = CHOICE_LETTERS
_LETTER_IN_BOX = re.compile(rf"^\(?([{_L}{_L.lower()}])\)?(?![A-Za-z0-9])")
# Only the phrase ignores case: a lowercase "a" after "the answer is" is an article.
_LETTER_AFTER_PHRASE = re.compile(
    rf"(?i:answer\s*(?:is|:)\s*(?:option\s*|choice\s*)?)[\s:*$]*\(?([{_L}])\)?(?![A-Za-z0-9])"
)
_LETTER_IN_PARENS = re.compile(rf"\(([{_L}])\)")
_LETTER_STANDALONE = re.compile(rf"(?<![A-Za-z0-9\\])(?!I\s+[a-z])([{_L}])(?![A-Za-z0-9'’])")
# "1\,000" (a thin space between digit groups) is a thousands separator; other spacing is kept.
_THIN_SPACE_GROUP = re.compile(r"(?<=\d)\\[,!](?=\d{3}(?!\d))")
_MATH_TIMEOUT_SECONDS = 5  # math-verify's own default parsing timeout
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def check_answer_type(answer_type: str) -> None:
    if answer_type not in ANSWER_TYPES:
        raise UsageError(f"answer_type {answer_type!r}: expected one of {', '.join(ANSWER_TYPES)}")


def extract_answer(text: str, answer_type: AnswerType) -> str | None:
    """The final answer of ``text`` as written (trimmed), or None if there is none."""
    check_answer_type(answer_type)
    if answer_type == "math":
        return _extract_math(text)
    if answer_type == "integer":
        return _extract_integer(text)
    return _extract_choice(text)


def _no_box_inside(answer: str | None) -> str | None:
    """None for text that still holds a box command: the remains of an empty or unclosed box, never an answer."""
    return None if answer is None or _BOX_COMMAND.search(answer) else answer


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}``; None if absent, empty or unclosed.

    An unclosed last box (a completion cut at the length limit) is not replaced by
    an earlier box: earlier boxes are usually intermediate results.
    """
    matches = list(_BOX_COMMAND.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text):
        return None
    if text[start] != "{":  # "\boxed 5": the rest of the token
        token = re.match(r"[^\s$]+", text[start:])
        # a lone "\" or another box ("\boxed\boxed...", a cut-off completion) is no answer
        return _no_box_inside(_nonempty(token.group(0).rstrip("\\") if token else ""))
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":  # escaped brace "\{" or a command: never a group delimiter
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return _nonempty(text[start + 1 : i])
        i += 1
    return None


def _nonempty(answer: str) -> str | None:
    answer = answer.strip()
    return answer or None


def _extract_math(text: str) -> str | None:
    """The span math-verify reads its answer from (None: it finds none), see the module docstring."""
    timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    previous = signal.signal(signal.SIGALRM, math_reader._on_alarm) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, _MATH_TIMEOUT_SECONDS)
        try:
            parsed, span = math_reader.extract_target(text)
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except math_reader.CallTimedOut:
        return None  # math-verify's parse returns [] after its timeout: no answer
    finally:
        if timed:
            signal.signal(signal.SIGALRM, previous)
    # only math-verify's fallback string (e.g. an unclosed box): no answer, as for the Grader's votes
    return span if math_reader.has_value(parsed) and span else None


def _numbers(text: str) -> list[str]:
    """Numbers in ``text``, commas removed; a '-' counts as a sign only when it is not a binary minus."""
    found = []
    for match in _NUMBER.finditer(text):
        number = match.group(0).replace(",", "")
        before = text[match.start() - 1] if match.start() > 0 else " "
        if number.startswith("-") and (before.isalnum() or before in ")}"):  # "10-3": 3, not -3
            number = number[1:]
        found.append(number)
    return found


def _as_single_number(answer: str) -> str | None:
    """``answer`` as a plain number if it is one once money and text wrappers are removed."""
    cleaned = _TEXT_WRAPPER.sub(r"\1", answer)
    cleaned = _THIN_SPACE_GROUP.sub(",", cleaned.replace("\\$", "").replace("$", ""))
    cleaned = cleaned.strip().rstrip(".").strip()  # inner whitespace stays: "1 2" is not 12
    if _NUMBER.fullmatch(cleaned):
        return cleaned.replace(",", "")
    return None


def _extract_integer(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        # "\boxed{\frac{9}{2}}" stays as written: equivalence falls back to math-verify.
        return _as_single_number(boxed) or boxed
    for marker in (_GSM8K_MARK, _ANSWER_PHRASE):
        matches = list(marker.finditer(text))
        if matches:
            numbers = _numbers(text[matches[-1].end() :].split("\n", 1)[0])
            if numbers:
                return numbers[0]
    numbers = _numbers(text)
    return numbers[-1] if numbers else None


def _extract_choice(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        letter = _LETTER_IN_BOX.match(_TEXT_WRAPPER.sub(r"\1", boxed).strip())
        if letter:
            return letter.group(1).upper()
    for pattern in (_LETTER_AFTER_PHRASE, _LETTER_IN_PARENS, _LETTER_STANDALONE):
        matches = pattern.findall(text)
        if matches:
            return matches[-1].upper()
    return None
