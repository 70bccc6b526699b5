"""Final-answer extraction: a case table plus properties over generated texts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrl_bench.errors import UsageError
from ttrl_bench.grading import extract_answer
from ttrl_bench.grading import worker as math_reader

CASES = json.loads((Path(__file__).parent / "cases" / "extract_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_extraction_case_table(case):
    assert extract_answer(case["text"], case["type"]) == case["expected"]


def test_case_table_covers_every_answer_type_and_no_answer():
    assert {c["type"] for c in CASES} == {"math", "integer", "choice"}
    assert {c["type"] for c in CASES if c["expected"] is None} == {"math", "integer", "choice"}


def test_math_extraction_reads_what_math_verify_parse_reads():
    """Each math case: our reading equals math-verify's own parse of the whole text, and its span re-parses the same."""
    from math_verify import parse

    for case in (c for c in CASES if c["type"] == "math"):
        parsed, span = math_reader.extract_target(case["text"])
        assert parsed == parse(case["text"], parsing_timeout=None), case["id"]
        if span is not None:
            assert parse(span, parsing_timeout=None) == parsed, case["id"]


# Brace-balanced LaTeX-ish content: atoms, groups, and commands with group arguments.
_atoms = st.sampled_from(["1", "x", "+", "-", "^", "_", "\\pi", "\\{", "\\}", " ", "2.5", "\\sqrt", "\\frac", "1,2", "%"])
_content = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map("".join),
        inner.map(lambda s: "{" + s + "}"),
    ),
    max_leaves=12,
).filter(lambda s: s.strip())
_frames = st.sampled_from([
    "First \\boxed{{{a}}} then, finally, \\boxed{{{b}}}. Done.",
    "So $${a}$$ and the answer is ${b}$.",
    "Final Answer: The final answer is ${b}$. I hope it is correct.",
    "We get {a}, hence answer: {b}",
    "\\[ {a} \\] therefore \\({b}\\)",
])


@settings(max_examples=80, deadline=None)
@given(a=_content, b=_content, frame=_frames)
def test_math_extraction_agrees_with_math_verify_on_generated_completions(a, b, frame):
    from math_verify import parse

    text = frame.format(a=a, b=b)
    parsed, span = math_reader.extract_target(text)
    assert parsed == parse(text, parsing_timeout=None)
    # an answer exactly when math-verify reads a value (a bare fallback string, e.g. an unclosed box, is none)
    assert (extract_answer(text, "math") is None) == (not math_reader.has_value(parsed))


@settings(max_examples=60, deadline=None)
@given(number=st.integers(min_value=-10**9, max_value=10**9))
def test_integers_written_with_thousands_separators_come_back_plain(number):
    assert extract_answer(f"Altogether we get {number:,} items", "integer") == str(number)
    assert extract_answer(f"work...\n#### {number:,}", "integer") == str(number)


@settings(max_examples=40, deadline=None)
@given(letter=st.sampled_from("ABCD"), noise=st.sampled_from(["A", "B", "C", "D", "(A)", "(D)"]))
def test_explicit_choice_beats_letters_mentioned_before(letter, noise):
    assert extract_answer(f"Consider {noise} first. The answer is ({letter})", "choice") == letter


def test_unknown_answer_type_is_a_usage_error_naming_it():
    with pytest.raises(UsageError, match="answer_type 'numeric'"):
        extract_answer("\\boxed{1}", "numeric")
