"""Where a completion is cut for budget forcing: at token budgets and at episode boundaries.

A completion's *thinking* is its text before the first forced-answer suffix it
wrote itself (e.g. ``</think>`` for R1-style models, ``>`` for the episodes
model), or all of it if it never wrote one. Cuts fall inside the thinking:

- at a token budget b: the first b tokens of the thinking (all of it when it is
  shorter: a model that stopped thinking spends no more tokens);
- at an episode boundary: the text before each match of the task's episode
  regex (e.g. ``\\n\\nWait|\\n\\nAlternatively``), and the whole thinking as the end
  of the last episode.

Tokens are counted by re-tokenising the thinking with the model's tokenizer; a
prefix is an exact substring of the completion (from the tokenizer's offsets),
so forcing never rewrites what the model said.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cut:
    tokens: int  # tokens of the completion kept (the compute spent)
    prefix: str  # the kept text


def thinking_part(text: str, suffix: str) -> str:
    """The text before the first occurrence of ``suffix`` (all of it if absent or no suffix)."""
    stripped = suffix.strip()
    if stripped and stripped in text:
        return text[: text.index(stripped)]
    return text


def token_ends(tokenizer, text: str) -> list[int]:
    """Character end of each token of ``text`` (no special tokens), so prefix b = text[:ends[b-1]]."""
    if not text:
        return []
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ends, last = [], 0
        for _, end in enc["offset_mapping"]:
            last = max(last, end)  # byte-level tokens of one character share offsets
            ends.append(last)
        if ends:
            ends[-1] = len(text)
        return ends
    # slow tokenizers: decode growing prefixes (exact for the texts these tokenizers round-trip)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [len(tokenizer.decode(ids[: i + 1], skip_special_tokens=True)) for i in range(len(ids))]


def budget_cuts(ends: list[int], thinking: str, budgets: list[int]) -> list[Cut]:
    """One cut per budget (budget 0 = the empty prefix)."""
    cuts = []
    for b in budgets:
        if b < 0:
            raise ValueError(f"budgets must be >= 0, got {b}")
        if b >= len(ends):
            cuts.append(Cut(tokens=len(ends), prefix=thinking))
        else:
            cuts.append(Cut(tokens=b, prefix=thinking[: ends[b - 1]] if b else ""))
    return cuts


def episode_cuts(ends: list[int], thinking: str, marker: re.Pattern | None) -> list[Cut]:
    """Cuts after episode 0 (nothing), 1, ..., E (the whole thinking); [empty, whole] without a marker."""
    cuts = [Cut(tokens=0, prefix="")]
    if marker is not None:
        after_marker = 0  # where the previous marker ended
        for match in marker.finditer(thinking):
            pos, previous, after_marker = match.start(), after_marker, match.end()
            if pos <= previous:  # no episode before it (a leading or repeated marker)
                continue
            tokens = sum(1 for e in ends if e <= pos)
            cuts.append(Cut(tokens=tokens, prefix=thinking[:pos]))
    if thinking and thinking != cuts[-1].prefix:
        cuts.append(Cut(tokens=len(ends), prefix=thinking))
    return cuts


def default_budgets(max_new_tokens: int) -> list[int]:
    """Powers of two below the generation limit, then the limit itself."""
    out, b = [], 1
    while b < max_new_tokens:
        out.append(b)
        b *= 2
    return out + [max_new_tokens]
