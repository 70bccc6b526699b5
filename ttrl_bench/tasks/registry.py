"""Task definitions (``tasks/*.yaml``) and the registry that reads and validates them.

A task says where its questions come from (a hub dataset at a pinned revision,
or a builtin generator), which columns hold what, how a question becomes prompt
text, what kind of answer it has, and the generation defaults of its protocol.
Every field is checked when the file is read: a wrong or unknown field is a
``UsageError`` naming the file and the field, never a surprise halfway through
a run.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from pathlib import Path

from ttrl_bench.tasks.checked_yaml import Section, display_path, read_yaml_mapping
from ttrl_bench.errors import UsageError
from ttrl_bench.types import AnswerType, SamplingParams

TASKS_ENV = "TTRL_BENCH_TASKS"
DEFAULT_TASKS_DIR = Path(__file__).resolve().parent / "builtin"  # shipped in the wheel; ./tasks links here
# the embedded generator's splits (ttrl_bench.data.synthetic.SPLIT_DIGITS; a test keeps the two equal)
BUILTIN_SPLITS = ("near", "shift")
ANSWER_TYPES: tuple[str, ...] = ("math", "integer", "choice")
BUILTINS: tuple[str, ...] = ("synthetic",)
CHOICE_LETTERS = "ABCDEFGHIJ"
ChatTemplateMode = Literal["auto", True, False]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Source:
    """Where rows come from: a hub dataset (``hub`` set) or a builtin generator (``builtin`` set)."""

    split: str
    hub: str | None = None
    config: str | None = None
    revision: str | None = None  # a commit sha; None = not pinned, the hub copy is refused
    gated: bool = False  # the hub asks users to accept terms and authenticate (e.g. GPQA)
    builtin: str | None = None

    def describe(self) -> str:
        if self.builtin is not None:
            return f"builtin {self.builtin}, split {self.split}"
        config = f":{self.config}" if self.config else ""
        revision = f"@{self.revision[:7]}" if self.revision else " (revision not pinned)"
        return f"hub {self.hub}{config}{revision}, split {self.split}" + (", gated" if self.gated else "")


@dataclass(frozen=True)
class Fields:
    """Column names of a row. ``choices`` lists the correct choice first, then the distractors."""

    question: str
    answer: str | None = None  # None for choice tasks: the reference comes from ``choices``
    id: str | None = None  # None: the row index is the id
    level: str | None = None
    choices: tuple[str, ...] = ()
    answer_after: str | None = None  # keep only the text after this marker (GSM8K: "####")
    meta: tuple[str, ...] = ()  # further columns copied into Question.meta

    def columns(self) -> list[str]:
        named = [self.id, self.question, self.answer, self.level, *self.choices, *self.meta]
        return [c for c in named if c is not None]


@dataclass(frozen=True)
class Prompt:
    """User text = ``template`` with {question} (and {choices}) filled in, then a newline and ``suffix``.

    Only those placeholders are replaced; any other brace in the template is literal
    text. The chat template, if on, is applied later by the sampler. ``chat_template``:
    ``"auto"`` (the default) = the tokenizer's template if it has one, else the plain text
    (lm-eval's and lighteval's rule: base models rarely ship a template); ``True`` requires
    a template; ``False`` never uses one. ``pipeline.config.prepare`` resolves it per model.
    """

    template: str = "{question}"
    suffix: str = ""
    chat_template: ChatTemplateMode = "auto"

    def render(self, question: str, choices: tuple[str, ...] | list[str] = ()) -> str:
        listed = "\n".join(f"{CHOICE_LETTERS[i]}) {text}" for i, text in enumerate(choices))
        text = self.template.replace("{choices}", listed).replace("{question}", question)
        return f"{text}\n{self.suffix}" if self.suffix else text


@dataclass(frozen=True)
class GenerationDefaults:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    top_k: int = 0  # 0 = no top-k cut

    def sampling_params(self, seed: int) -> SamplingParams:
        return SamplingParams(n=self.n, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=seed, top_k=self.top_k)


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    source: Source
    fields: Fields
    prompt: Prompt
    answer_type: AnswerType
    generation: GenerationDefaults
    path: Path  # the YAML file it was read from
    choice_seed: int | None = None  # choice tasks: seed of the per-question choice shuffle

    def source_description(self) -> str:
        return self.source.describe()


def tasks_directory(directory: str | Path | None = None) -> Path:
    """``directory``, else $TTRL_BENCH_TASKS, else the repository's ``tasks/``."""
    if directory is None:
        directory = os.environ.get(TASKS_ENV) or DEFAULT_TASKS_DIR
    return Path(directory)


def load_tasks(directory: str | Path | None = None) -> dict[str, Task]:
    """Every ``*.yaml`` task of a directory, by name (sorted); any invalid file is an error."""
    folder = tasks_directory(directory)
    if not folder.is_dir():
        raise UsageError(f"{display_path(folder)}: no such tasks directory (set {TASKS_ENV} to the folder of task YAML files)")
    tasks = [load_task_file(p) for p in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])]
    by_name: dict[str, Task] = {}
    for task in tasks:
        if task.name in by_name:
            raise UsageError(f"{display_path(task.path)}: task '{task.name}' is also defined in {display_path(by_name[task.name].path)}")
        by_name[task.name] = task
    return dict(sorted(by_name.items()))


def get_task(name: str, directory: str | Path | None = None) -> Task:
    """A task by name, or by the path of a task YAML file (``--task my_task.yaml``)."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_task_file(Path(name))
    tasks = load_tasks(directory)
    if name not in tasks:
        known = ", ".join(tasks) or "none"
        raise UsageError(f"--task: unknown task {name!r}; known tasks: {known} (from {display_path(tasks_directory(directory))})")
    return tasks[name]


def load_task_file(path: Path) -> Task:
    """Read and validate one task file (the task's name is the file's stem)."""
    path = Path(path)
    file = display_path(path)
    top = Section(read_yaml_mapping(path), file, "", {
        "name", "description", "source", "fields", "prompt", "answer_type", "generation", "choice_seed"})
    name = top.text("name")
    if not _NAME.match(name) or name != path.stem:
        raise top.error("name", f"must equal the file name '{path.stem}' (lowercase letters, digits, '_')")
    answer_type = top.choice("answer_type", ANSWER_TYPES)
    fields = _read_fields(top, answer_type)
    return Task(
        name=name,
        description=top.free_text("description", ""),
        source=_read_source(top),
        fields=fields,
        prompt=_read_prompt(top, answer_type),
        answer_type=answer_type,  # type: ignore[arg-type]
        generation=_read_generation(top),
        path=path,
        choice_seed=_read_choice_seed(top, answer_type),
    )


def _read_source(top: Section) -> Source:
    s = top.section("source", {"hub", "config", "revision", "split", "gated", "builtin"})
    if s.has("hub") == s.has("builtin"):
        raise top.rule("source", "must name exactly one of 'hub' (a dataset id) or 'builtin'")
    if s.has("builtin"):
        builtin = s.choice("builtin", BUILTINS)
        for key in ("config", "revision", "gated"):
            if s.has(key):
                raise s.rule(key, "applies to hub sources only, not to a builtin source")
        return Source(split=s.choice("split", BUILTIN_SPLITS), builtin=builtin)
    hub = s.text("hub")
    if hub.count("/") != 1 or any(not part for part in hub.split("/")):
        raise s.error("hub", "must be a hub dataset id 'owner/name'")
    # `revision` must be written out, even as null: leaving a source unpinned is a decision, not an omission
    revision = s.text("revision", nullable=True)
    if revision is not None and not _SHA.match(revision):
        raise s.error("revision", "must be a full 40-character commit sha (or null: not pinned)")
    return Source(split=s.text("split"), hub=hub, config=s.text("config", None, nullable=True),
                  revision=revision, gated=s.boolean("gated", False))


def _read_fields(top: Section, answer_type: str) -> Fields:
    f = top.section("fields", {"id", "question", "answer", "level", "choices", "answer_after", "meta"})
    if answer_type == "choice":
        if f.has("answer") or f.has("answer_after"):
            raise f.rule("answer" if f.has("answer") else "answer_after",
                          "is not used by choice tasks (the reference is the correct entry of 'fields.choices')")
        choices = f.text_list("choices")
        if not 2 <= len(choices) <= len(CHOICE_LETTERS):
            raise f.error("choices", f"must list 2 to {len(CHOICE_LETTERS)} columns, the correct one first")
        answer = None
    else:
        if f.has("choices"):
            raise f.rule("choices", "is only for answer_type choice")
        choices, answer = (), f.text("answer")
    fields = Fields(question=f.text("question"), answer=answer, id=f.text("id", None), level=f.text("level", None),
                    choices=choices, answer_after=f.text("answer_after", None), meta=f.text_list("meta", ()))
    columns = fields.columns()
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise top.rule("fields", f"must not use column '{repeated[0]}' twice")
    return fields


def _read_prompt(top: Section, answer_type: str) -> Prompt:
    p = top.section("prompt", {"template", "suffix", "chat_template"})
    template = p.text("template", "{question}")
    used = set(_PLACEHOLDER.findall(template))
    allowed = {"question", "choices"} if answer_type == "choice" else {"question"}
    unknown = sorted(used - allowed)
    if unknown:
        raise p.error("template", f"may use only the placeholders {{{'}, {'.join(sorted(allowed))}}}, not {{{unknown[0]}}}")
    if used != allowed:
        missing = sorted(allowed - used)[0]
        raise p.error("template", f"must contain the placeholder {{{missing}}}")
    return Prompt(template=template, suffix=p.free_text("suffix", ""), chat_template=p.boolean_or("chat_template", "auto", "auto"))


def _read_generation(top: Section) -> GenerationDefaults:
    g = top.section("generation", {"n", "temperature", "top_p", "top_k", "max_new_tokens"})
    return GenerationDefaults(
        n=g.integer("n", minimum=1),
        temperature=g.number("temperature", low=0.0),
        top_p=g.number("top_p", low=0.0, high=1.0, low_open=True),
        top_k=g.integer("top_k", 0, minimum=0),
        max_new_tokens=g.integer("max_new_tokens", minimum=1),
    )


def _read_choice_seed(top: Section, answer_type: str) -> int | None:
    if answer_type != "choice":
        if top.has("choice_seed"):
            raise top.rule("choice_seed", "is only for answer_type choice")
        return None
    # required, not defaulted: the shuffle decides which letter is right, so it belongs in the file
    return top.integer("choice_seed", minimum=0)
