"""The settings the README documents for R1-style reasoning models, read from a task file and applied
to an R1-style completion: where the thinking ends, where episodes start, what the forced prompt is,
and that the forced answer (graded as suffix + answer) is read from the \\boxed{ the suffix opens."""
from __future__ import annotations

from ttrl_bench.grading.extract import extract_answer
from ttrl_bench.measure.budget_cuts import episode_cuts, thinking_part
from ttrl_bench.tasks.registry import load_task_file

# the README's block ("R1-style reasoning models"), verbatim
R1_BUDGET = r'''
budget:
  episode_marker: "\n\n(?:Wait|Alternatively|Hmm|But wait|Let me (?:check|verify))"
  thinking_end: "</think>"
  forced_suffix: "\n\nTime is up. Given the time I've spent, the final answer is\n</think>\n\n\\boxed{"
  forced_max_tokens: 32
'''

TASK = '''name: r1_budget
description: R1-style budget settings
source:
  hub: local/r1
  revision: null
  split: test
fields:
  question: question
  answer: answer
prompt:
  template: "{question}"
  chat_template: auto
answer_type: math
generation:
  n: 4
  temperature: 0.6
  top_p: 0.95
  max_new_tokens: 8192
'''

COMPLETION = ("Okay, 6 times 7. That is 42.\n\nWait, let me recount: 6*7 = 42.\n\nHmm, yes 42.\n"
              "</think>\n\nThe answer is \\boxed{42}.")


class Chars:
    """One token per character (offsets as a fast tokenizer gives them)."""
    is_fast = True

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        return {"input_ids": list(range(len(text))), "offset_mapping": [(i, i + 1) for i in range(len(text))]}


def test_the_documented_r1_settings(tmp_path):
    path = tmp_path / "r1_budget.yaml"
    path.write_text(TASK + R1_BUDGET)
    settings = load_task_file(path).budget
    assert settings.end_of_thinking == "</think>" and settings.forced_max_tokens == 32
    assert settings.forced_suffix.startswith("\n\nTime is up.") and settings.forced_suffix.endswith("</think>\n\n\\boxed{")

    thinking = thinking_part(COMPLETION, settings.end_of_thinking)
    assert thinking == "Okay, 6 times 7. That is 42.\n\nWait, let me recount: 6*7 = 42.\n\nHmm, yes 42.\n"
    ends = [i + 1 for i in range(len(thinking))]
    cuts = episode_cuts(ends, thinking, settings.marker_regex())
    assert [c.prefix for c in cuts] == [
        "", "Okay, 6 times 7. That is 42.", "Okay, 6 times 7. That is 42.\n\nWait, let me recount: 6*7 = 42.", thinking,
    ]
    # "Wait" is matched case-sensitively at a paragraph start only: "wait" inside a sentence is no episode
    assert len(episode_cuts(ends, "so wait.\n\nwait no", settings.marker_regex())) == 2

    # a forced answer closes the \boxed{ the suffix opened; it is graded as suffix + answer
    assert extract_answer(settings.forced_suffix + "42}", "math") == "\\boxed{42}"  # the span math-verify reads
    assert extract_answer(settings.forced_suffix + "42} because 6*7", "integer") == "42"
    # the prompt the prover continues: the thinking so far, then the suffix that closes the thinking
    forced_prompt = cuts[1].prefix + settings.forced_suffix
    assert forced_prompt.count("</think>") == 1 and forced_prompt.endswith("\\boxed{")


def test_a_suffix_that_starts_with_whitespace_brings_its_own_separator():
    from ttrl_bench.tasks.schema import BudgetSettings

    r1 = BudgetSettings(thinking_end="</think>", forced_suffix="\n\nTime is up.\n</think>\n\n\\boxed{")
    thinking = thinking_part("so 42.\n</think>\n\n\\boxed{42}", r1.end_of_thinking)
    assert thinking == "so 42.\n"
    assert r1.forced_text(thinking) == "so 42.\n\nTime is up.\n</think>\n\n\\boxed{"  # two newlines, as written
    sentences = BudgetSettings(thinking_end="The answer is", forced_suffix=" The answer is")
    thinking = thinking_part("7 - 3 = 4. The answer is 4.", sentences.end_of_thinking)
    assert sentences.forced_text(thinking) == "7 - 3 = 4. The answer is"
    assert sentences.forced_text("") == " The answer is"
    # a suffix without leading whitespace is appended to the prefix as it is
    assert BudgetSettings(forced_suffix=">").forced_text("46;47 ") == "46;47 >"
