"""Validators the configs of ``pipeline`` share: each raises the CLI's one-line ``UsageError`` naming the flag."""
from __future__ import annotations

from ttrl_bench.errors import UsageError


def check_int(flag: str, value: int | None, low: int, note: str = "") -> None:
    """``value`` is None (unset) or an integer >= ``low`` (a bool is not an integer here); ``note`` explains
    the bound in the error, e.g. "(0 = off)"."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag}: must be an integer, got {value!r}")
    if value < low:
        raise UsageError(f"{flag}: must be an integer >= {low}{' ' + note if note else ''}, got {value}")
