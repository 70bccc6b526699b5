"""Grading: final-answer extraction and equivalence classes of a question's answers.

- ``extract_answer(text, answer_type)``: the final answer of a completion, or None.
- ``Grader``: math-verify in worker processes, one question per request, with a
  time limit per operation and a budget per question: ``grade``/``grade_many``
  against references, ``judge`` for one group (TTRL rewards), ``classify``
  without a reference, ``equivalent`` for a single pair, and ``stats`` counters.
"""
from ttrl_bench.grading.extract import extract_answer
from ttrl_bench.grading.grader import Grader, GraderStats, GroupJudgement

__all__ = ["extract_answer", "Grader", "GraderStats", "GroupJudgement"]
