"""A math-verify worker process: grades one question per request, math-verify's own way.

Run as a script (see pool.py), so it imports nothing from ttrl_bench.

Protocol (JSON lines, so nothing is ever unpickled). After start-up the worker
writes ``{"ready": true}``. A request is one question::

    {"texts": [str], "gold": str | null, "plain": [bool] | null, "timeout": s, "budget": s,
     "unparseable": [text index], "failed": [[a, b]]}

``texts`` are the question's distinct texts (whole completions for ``math``),
``gold`` the reference text. Before each math-verify operation the worker writes
``{"op": [...], "limit": s}`` (so the parent knows what was running if it has to
kill the worker) and after a timed-out one ``{"timeout": [...]}``; the answer is
``{"done": {...}}`` (see ``_grade``).

What is math-verify's and what is ours:
- a text is read by math-verify's own extraction (its regexes, priorities and
  ``extract_match``; ``extract_target`` mirrors ``extract_target_from_pred`` only
  to also return the matched span), so ``parsed(text) == math_verify.parse(text)``;
- every verdict is ``math_verify.verify(parsed_gold, parsed_pred)``; the only
  verdict decided without it is between two *identical* parse results that hold a
  non-empty string, which verify's own string comparison makes equal;
- a parse that times out (or is skipped once the question's budget is spent)
  yields ``[]``, as math-verify's own ``parse`` returns after its timeout: it
  equals nothing.

math-verify's timeouts use ``signal.alarm`` (whole seconds, main thread) and
report a timeout as "not equal"; here every operation runs under a fractional
``setitimer`` whose exception math-verify does not catch, so a timeout is
counted, and no operation outlives the question's budget. A computation stuck
in C code, which no signal interrupts, is left to the parent (it kills the worker).
"""
from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import time

_MEMORY_LIMIT_BYTES = 4 << 30  # a runaway sympy expression fails with MemoryError, not the machine

_WARM_UP = [
    ("$\\frac{1}{2}$", "0.5"),
    ("$(2,1)$", "$(1,2)$"),
    ("$4\\sqrt{2}$", "\\boxed{\\sqrt{32}}"),
    ("\\boxed{[1,2)}", "The answer is $x=3$"),
    ("$\\{1,2\\}$", "10 percent"),
]
# Delimiters around math-verify's latex groups, to show an answer as it was written.
_DELIMITERS = {
    "latexDisplayDollar": ("$$", "$$"), "latexDisplayBracket": ("\\[", "\\]"), "latexInlineDollar": ("$", "$"),
    "latexInlineParenthesis": ("\\(", "\\)"), "latexInlineBracket": ("[", "]"),
}


class CallTimedOut(BaseException):
    """Not an Exception subclass: math-verify's ``except Exception`` must not swallow it."""


def _on_alarm(signum, frame):
    raise CallTimedOut()


_TARGETS = None


def _targets():
    """math-verify's default extraction targets of ``parse`` (latex, then plain expressions), grouped by priority."""
    global _TARGETS
    if _TARGETS is None:
        from itertools import groupby

        from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig, get_extraction_regexes

        regexes = get_extraction_regexes([LatexExtractionConfig(), ExprExtractionConfig()])
        patterns = sorted(
            ((pattern, target, priority) for group, target in regexes for pattern, priority in group),
            key=lambda item: item[2],
        )
        _TARGETS = [[(p, t) for p, t, _ in group] for _, group in groupby(patterns, key=lambda item: item[2])]
    return _TARGETS


def extract_target(text: str, memo: dict | None = None) -> tuple[list, str | None]:
    """``(math_verify.parse(text), the span of text it was read from)``.

    Mirrors ``extract_target_from_pred`` (fallback "first_match", extraction
    "any_match": the highest-priority pattern group with a match that parses, its
    rightmost such match, plus the first matched string as a fallback) and, like
    ``parse``, turns any error into ``[]``. ``memo`` maps a match's groups to
    ``extract_match``'s result: texts of one question that end in the same
    answer are parsed once.
    """
    from math_verify.parser import extract_match

    memo = {} if memo is None else memo
    try:
        extracted: list = []
        fallbacks: list[str] = []
        span = fallback_span = None
        for group in _targets():
            matches = [(m, target) for pattern, target in group for m in pattern.finditer(text)]
            matches.sort(key=lambda item: (item[0].end(), -item[0].start()), reverse=True)
            for match, target in matches:
                key = (id(target), tuple(sorted((k, v) for k, v in match.groupdict().items() if v is not None)))
                if key not in memo:
                    memo[key] = extract_match(match, target)
                value, fallback = memo[key]
                if fallback:
                    fallbacks.append(fallback)
                    fallback_span = fallback_span or _span(match)
                if value is not None:
                    extracted.append(value)
                    span = _span(match)
                    break
            if extracted:
                break
        if fallbacks:
            extracted.append(fallbacks[0])
        # Without a parsed value, the first matched string is math-verify's answer (it compares strings).
        return extracted, span if span is not None else fallback_span
    except Exception:  # parse() returns [] on any error
        return [], None


def _span(match) -> str:
    """The part of the text a match's answer groups cover, with their math delimiters."""
    starts, ends = [], []
    for name, value in match.groupdict().items():
        if value is None or name.endswith("percent") and not value:
            continue
        kind = name.split("_")[-1]
        before, after = _DELIMITERS.get(kind, ("", ""))
        if kind == "expr" or kind.startswith(("integer", "decimal", "latex", "percent")):
            starts.append(match.start(name) - len(before))
            ends.append(match.end(name) + len(after))
    if not starts:
        return match.group(0).strip()
    return match.string[max(0, min(starts)) : max(ends)].strip()


def has_value(parsed: list) -> bool:
    """Did math-verify read a value (not only its fallback string)?"""
    return any(not isinstance(p, str) for p in parsed)


def parse_key(parsed: list) -> tuple | None:
    """Identity of a parse result; None when it holds no non-empty string.

    Two identical results that hold a non-empty string are equal to verify
    (its string-to-string comparison matches them), so they never need it.
    """
    from sympy import srepr

    if not any(isinstance(p, str) and p.strip() for p in parsed):
        return None
    try:
        return tuple(("s", p) if isinstance(p, str) else ("e", srepr(p)) for p in parsed)
    except Exception:  # e.g. RecursionError on a deep expression: no identity, verify decides
        return None


class _ReadCache:
    """Texts already read by this worker (across questions), bounded by their total length.

    A read is a pure function of the text, so a second question holding the same
    text (the same reference, the same answer next epoch) reuses it. Reads that
    timed out are never stored (the parent remembers those).
    """

    def __init__(self, max_chars: int = 20_000_000):
        import collections

        self.entries: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self.chars, self.max_chars = 0, max_chars

    def get(self, text: str):
        entry = self.entries.get(text)
        if entry is not None:
            self.entries.move_to_end(text)
        return entry

    def put(self, text: str, entry: tuple) -> None:
        if text in self.entries or len(text) > self.max_chars // 100:
            return
        self.entries[text] = entry
        self.chars += len(text)
        while self.chars > self.max_chars:
            old, _ = self.entries.popitem(last=False)
            self.chars -= len(old)


_READS = _ReadCache()


class _Question:
    """One request: parse each text at most once, place texts into classes, compare classes with the gold."""

    def __init__(self, request: dict, emit):
        self.texts: list[str] = request["texts"]
        self.gold: str | None = request.get("gold")
        self.plain: list[bool] | None = request.get("plain")  # per text, then the gold
        self.timeout: float | None = request.get("timeout")
        budget = request.get("budget")
        self.deadline = time.monotonic() + budget if budget is not None else None
        self.unparseable = set(request.get("unparseable", []))  # known to time out: not parsed again
        # An answer whose comparison timed out (here or in a killed worker) is not compared again in this
        # question: its other comparisons would most likely time out too (math-verify: "not equal").
        # The culprit is the predicted side (the newcomer being placed, or the class founder against the gold).
        self.poisoned = {pair[1] for pair in request.get("failed", [])}
        self.emit = emit
        self.parsed: dict[int, list] = {}
        self.spans: dict[int, str | None] = {}
        self.memo: dict = {}
        self.counts = {"parses": 0, "verifies": 0, "timeouts": 0, "skipped": 0}
        self.parse_timeouts: list[int] = []
        # A text math-verify reads no value from (only its fallback string, e.g. an unclosed box) is no
        # answer in a vote; ``strings_are_answers`` (``equivalent``) keeps math-verify's string comparison.
        self.strings_are_answers = bool(request.get("strings_are_answers"))

    # index len(texts) is the gold
    def _text(self, i: int) -> str:
        return self.gold if i == len(self.texts) else self.texts[i]

    def _limit(self) -> float | None:
        """Seconds the next operation may take; 0: the budget is spent."""
        limits = [t for t in (self.timeout,) if t]
        if self.deadline is not None:
            limits.append(max(0.0, self.deadline - time.monotonic()))
        return min(limits) if limits else None

    def _timed(self, op: list, work):
        """Run one math-verify operation under the question's limits; ``(result, "ok"|"timeout"|"skipped")``."""
        limit = self._limit()
        if limit is not None and limit <= 0.001:
            self.counts["skipped"] += 1
            return None, "skipped"
        self.emit({"op": op, "limit": limit})
        try:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                return work(), "ok"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except CallTimedOut:
            self.counts["timeouts"] += 1
            if op[0] == "verify":
                self.poisoned.add(op[2])
            self.emit({"timeout": op})
            return None, "timeout"

    def parse(self, i: int) -> list:
        if i not in self.parsed:
            self.parsed[i], self.spans[i] = [], None
            if i in self.unparseable:
                return []
            text = self._text(i)
            result, status = _READS.get(text), "ok"
            if result is None:
                before = len(self.memo)
                result, status = self._timed(["parse", i], lambda: _with_key(extract_target(text, self.memo)))
                self.counts["parses"] += len(self.memo) - before
                if status == "ok":
                    _READS.put(text, result)
            if status == "ok":
                (self.parsed[i], self.spans[i]), self.keys[i] = result
            elif status == "timeout":
                self.parse_timeouts.append(i)
        return self.parsed[i]

    def equal(self, a: int, b: int) -> bool:
        """verify(parsed[a] as gold, parsed[b]); not equal if either is unparseable or it does not finish."""
        gold, pred = self.parse(a), self.parse(b)
        if not gold or not pred:
            return False
        if self.plain is not None and self.plain[a] and self.plain[b]:
            return self._text(a) == self._text(b)  # plain numbers (integer tasks): canonical strings decide
        if self.keys.get(a) is not None and self.keys.get(a) == self.keys.get(b):
            return True
        if a in self.poisoned or b in self.poisoned:
            self.counts["skipped"] += 1
            return False
        from math_verify import verify

        self.counts["verifies"] += 1
        result, status = self._timed(["verify", a, b], lambda: bool(verify(gold, pred, timeout_seconds=None)))
        return bool(result) if status == "ok" else False

    def grade(self) -> dict:
        self.keys: dict[int, tuple | None] = {}
        classes: list[int] = []
        founders: list[int] = []
        for i in range(len(self.texts)):
            parsed = self.parse(i)
            if not parsed or not (self.strings_are_answers or has_value(parsed)):
                classes.append(-1)
                continue
            joined = next((c for c, f in enumerate(founders) if self.equal(f, i)), None)
            if joined is None:
                joined = len(founders)
                founders.append(i)
            classes.append(joined)
        correct = None
        if self.gold is not None:
            g = len(self.texts)
            correct = [self.equal(g, f) for f in founders]
        return {
            "answers": [self.spans.get(i) for i in range(len(self.texts))],
            "classes": classes,
            "class_correct": correct,
            "parse_timeouts": [i for i in self.parse_timeouts if i < len(self.texts)],
            "gold_timed_out": len(self.texts) in self.parse_timeouts,
            **self.counts,
        }


def _with_key(result: tuple[list, str | None]):
    return result, parse_key(result[0])


def _serve(requests, replies) -> None:
    import math_verify  # noqa: F401  (imported before "ready": start-up is not a graded call)

    def emit(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    # sympy pays a one-off cost the first time it meets each kind of expression
    # (up to ~0.2 s here): pay it before reporting ready, not inside a timed call.
    for gold, pred in _WARM_UP:
        _Question({"texts": [pred], "gold": gold}, lambda message: None).grade()
    emit({"ready": True})
    for line in requests:
        request = json.loads(line)
        started = time.monotonic()
        result = _Question(request, emit).grade()
        result["seconds"] = time.monotonic() - started
        emit({"done": result})


def main() -> None:
    # The protocol owns the original stdout; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Ctrl-C reaches the whole process group: the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):
        pass  # a lower hard limit is already in place
    # The worker times every call itself; math-verify's own warnings about that are noise.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    sys.setrecursionlimit(10_000)
    _serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
