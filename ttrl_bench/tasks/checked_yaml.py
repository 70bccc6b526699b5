"""Reading a user's YAML file field by field, with one-line errors that name file and field.

``Section`` wraps one mapping of a parsed file. Its readers check type and range
and raise ``UsageError("<file>: field 'generation.n' must be an integer >= 1, got 0")``;
keys outside the section's declared set are errors too, so a typo never passes
silently as "field not given, default used".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ttrl_bench.errors import UsageError

_REQUIRED = object()  # sentinel: "no default", distinct from a default of None


def display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """``yaml.safe_load`` of a file that must hold a mapping; syntax errors name the line."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{shown}: cannot read the file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{shown}: {where}not valid YAML ({' '.join(str(problem).split())})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{shown}: expected a YAML mapping of fields at the top level, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Section:
    """One mapping of a YAML file; ``prefix`` is its dotted field name ("" at top level)."""

    def __init__(self, data: Any, file: str, prefix: str, allowed: set[str]):
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            raise self.error_for(prefix, "must be a mapping", data)
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise UsageError(
                f"{file}: field '{self.name(unknown[0])}' is unknown; expected one of {', '.join(sorted(allowed))}"
            )
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error_for(self, field_name: str, expected: str, value: Any) -> UsageError:
        return UsageError(f"{self.file}: field '{field_name}' {expected}, got {_kind(value)}")

    def error(self, key: str, expected: str) -> UsageError:
        """An error about ``key``'s present value, e.g. a rule that ties two fields together."""
        return self.error_for(self.name(key), expected, self.data.get(key))

    def rule(self, key: str, message: str) -> UsageError:
        """An error that ties fields together, where the value itself is not the point."""
        return UsageError(f"{self.file}: field '{self.name(key)}' {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any, expected: str) -> tuple[bool, Any]:
        if key not in self.data:
            if default is _REQUIRED:
                raise UsageError(f"{self.file}: field '{self.name(key)}' is missing; it {expected}")
            return False, default
        return True, self.data[key]

    def text(self, key: str, default: Any = _REQUIRED, *, nullable: bool = False) -> Any:
        expected = "must be a non-empty text" + (" or null" if nullable else "")
        given, value = self._get(key, default, expected)
        if not given or (nullable and value is None):
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, expected)
        return value

    def free_text(self, key: str, default: str) -> str:
        """Text that may be empty (e.g. a prompt suffix)."""
        given, value = self._get(key, default, "must be a text")
        if given and not isinstance(value, str):
            raise self.error(key, "must be a text")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = _REQUIRED) -> str:
        expected = f"must be one of {', '.join(options)}"
        given, value = self._get(key, default, expected)
        if given and value not in options:
            raise self.error(key, expected)
        return value

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        given, value = self._get(key, default, "must be true or false")
        if given and not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def boolean_or(self, key: str, word: str, default: Any = _REQUIRED) -> bool | str:
        """true, false, or the one word ``word`` (e.g. ``auto``)."""
        expected = f"must be true, false or {word}"
        given, value = self._get(key, default, expected)
        if given and value != word and not isinstance(value, bool):
            raise self.error(key, expected)
        return value

    def integer(self, key: str, default: Any = _REQUIRED, *, minimum: int | None = None) -> int:
        expected = "must be an integer" + (f" >= {minimum}" if minimum is not None else "")
        given, value = self._get(key, default, expected)
        if not given:
            return value
        # bool is an int subclass in Python; `n: true` is a typo, not 1
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self.error(key, expected)
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, low: float, high: float | None = None,
               low_open: bool = False) -> float:
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        expected = f"must be a number {bounds}"
        given, value = self._get(key, default, expected)
        if not given:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, expected)
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high):
            raise self.error(key, expected)
        return float(value)

    def text_list(self, key: str, default: Any = _REQUIRED) -> tuple[str, ...]:
        expected = "must be a list of non-empty texts"
        given, value = self._get(key, default, expected)
        if not given:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, expected)
        if len(set(value)) != len(value):
            raise self.error(key, "must not repeat a name")
        return tuple(value)

    def section(self, key: str, allowed: set[str]) -> "Section":
        given, value = self._get(key, _REQUIRED, "must be a mapping")
        return Section(value, self.file, self.name(key), allowed)
