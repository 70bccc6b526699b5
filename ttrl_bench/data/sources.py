"""Reading a task's raw rows: builtin generator, local file (``--data``) or the hub at a pinned revision.

Each reader returns the rows as plain dicts plus an ``origin`` string that data
errors start with (the file path, or the hub id and revision), so a bad row
can be found.
"""
from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

from ttrl_bench.tasks.checked_yaml import display_path
from ttrl_bench.data.synthetic import test_split
from ttrl_bench.errors import UsageError
from ttrl_bench.tasks import Task

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_LAYOUTS = {".json": 'a list of objects, or {"data": [objects]}', ".jsonl": "one JSON object per line",
            ".parquet": "a parquet table"}


def read_rows(task: Task, data_path: str | Path | None, limit: int | None,
              trust_remote_code: bool) -> tuple[list[dict[str, Any]], str]:
    if data_path is not None:
        path = Path(data_path)
        return _read_local(path, limit), display_path(path)
    if task.source.builtin is not None:
        rows = test_split(task.source.split)  # the only builtin ("synthetic"), checked when the task was read
        return rows[:limit], f"builtin {task.source.builtin}:{task.source.split}"
    return _read_hub(task, limit, trust_remote_code)


def _read_local(path: Path, limit: int | None) -> list[dict[str, Any]]:
    import datasets

    shown = display_path(path)
    builder = LOCAL_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise UsageError(f"--data {shown}: expected a .json, .jsonl or .parquet file, got '{path.suffix or 'no suffix'}'")
    if not path.is_file():
        raise UsageError(f"--data {shown}: no such file")
    if path.stat().st_size == 0:
        raise UsageError(f"--data {shown}: the file is empty")
    # In memory, with a throwaway cache: a user's small file must not leave arrow copies in ~/.cache.
    # Without datasets' "Generating train split" bar: a bad row must end in one error line on stderr.
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return _load_local(datasets, path, builder, limit)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def _load_local(datasets: Any, path: Path, builder: str, limit: int | None) -> list[dict[str, Any]]:
    shown = display_path(path)
    layout = _LAYOUTS[path.suffix.lower()]
    with tempfile.TemporaryDirectory(prefix="ttrl-bench-data-") as cache:
        def load(**kwargs: Any) -> Any:
            try:
                return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache,
                                             keep_in_memory=True, **kwargs)
            except Exception as exc:  # the datasets/pyarrow error types vary by version and format
                raise UsageError(f"--data {shown}: expected {layout} ({_one_line(exc, innermost=True)})") from exc

        table = load()
        field = _records_field(table) if path.suffix.lower() == ".json" else None
        if field is not None:
            table = load(field=field)
        if limit is not None:
            table = table.select(range(min(limit, len(table))))
        return table.to_list()


def _records_field(table: Any) -> str | None:
    """For ``{"data": [{...}, ...], "version": ...}`` (read as one row): the key that holds the rows."""
    if len(table) != 1:
        return None
    row = table[0]
    keys = [k for k, v in row.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    return keys[0] if len(keys) == 1 else None


def _read_hub(task: Task, limit: int | None, trust_remote_code: bool) -> tuple[list[dict[str, Any]], str]:
    import datasets

    src = task.source
    columns = ", ".join(f"'{c}'" for c in task.fields.columns())
    use_data = f"pass --data PATH with a local .json/.jsonl/.parquet copy holding the fields {columns}"
    if src.revision is None:
        raise UsageError(f"{display_path(task.path)}: field 'source.revision' is not pinned, so {src.hub} is not "
                         f"loaded from the hub; {use_data}")
    origin = f"{src.hub}@{src.revision[:7]}"
    kwargs: dict[str, Any] = {}
    # datasets >= 4 no longer runs loading scripts and has no such argument; older versions do
    if trust_remote_code and "trust_remote_code" in inspect.signature(datasets.load_dataset).parameters:
        kwargs["trust_remote_code"] = True
    try:
        table = datasets.load_dataset(src.hub, src.config, revision=src.revision, split=src.split, **kwargs)
    except Exception as exc:  # offline, gated, renamed, wrong split: all end the same way for the user
        gated = " (a gated dataset: accept its terms on the hub and set HF_TOKEN)" if src.gated else ""
        raise UsageError(f"task {task.name}: cannot load {origin} split {src.split} from the hub{gated} "
                         f"({_one_line(exc, innermost=False)}); {use_data}") from exc
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    return table.to_list(), origin


def _one_line(exc: BaseException, innermost: bool) -> str:
    """One line about an error: for a local file the innermost cause (datasets wraps the parser
    error that says what is wrong), for the hub the outermost ("Couldn't reach ... (offline)")."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for candidate in (reversed(seen) if innermost else seen):
        text = " ".join(str(candidate).split())
        if text:
            return f"{type(candidate).__name__}: {text[:300]}"
    return type(seen[0]).__name__
