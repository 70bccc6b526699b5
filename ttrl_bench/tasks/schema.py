"""The schema of a task file: ``Task`` and its parts (frozen dataclasses), and the readers that
validate each section of the YAML, naming file and field in every error."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ttrl_bench.tasks.checked_yaml import Section
from ttrl_bench.errors import UsageError
from ttrl_bench.types import CHOICE_LETTERS, AnswerType, SamplingParams

TASKS_ENV = "TTRL_BENCH_TASKS"
DEFAULT_TASKS_DIR = Path(__file__).resolve().parent / "builtin"  # shipped in the wheel; ./tasks links here
# the embedded generator's splits (ttrl_bench.data.synthetic.SPLIT_DIGITS; a test keeps the two equal)
BUILTIN_SPLITS = ("near", "shift", "episodes")
# `model:` values that name a model shipped in the package rather than a path
EMBEDDED_MODELS: tuple[str, ...] = ("embedded", "embedded:episodes")
ANSWER_TYPES: tuple[str, ...] = ("math", "integer", "choice")
BUILTINS: tuple[str, ...] = ("synthetic",)
ChatTemplateMode = Literal["auto", True, False]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
LM_EVAL_PREFIX = "lm_eval:"


@dataclass(frozen=True)
class Source:
    """Where rows come from: a hub dataset (``hub`` set), a builtin generator (``builtin`` set) or an
    lm-evaluation-harness task (``lm_eval`` set; its own dataset config, prompts and targets)."""

    split: str
    hub: str | None = None
    config: str | None = None
    revision: str | None = None  # a commit sha; None = not pinned, the hub copy is refused
    gated: bool = False  # the hub asks users to accept terms and authenticate (e.g. GPQA)
    builtin: str | None = None
    lm_eval: str | None = None  # an lm-eval task name
    include_path: str | None = None  # lm-eval: an extra folder of task YAMLs (absolute)

    def describe(self) -> str:
        if self.lm_eval is not None:
            return f"lm-eval task {self.lm_eval}" + (f" from {self.include_path}" if self.include_path else "")
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
class BudgetSettings:
    """How ``ttrl-bench budget`` forces answers out of a prefix (see ttrl_bench.measure.budget_cuts).

    ``episode_marker``: a regex whose matches start a new episode (None: token budgets only);
    ``forced_suffix``: appended after a prefix to make the model answer (also where its own
    thinking ends, unless ``thinking_end`` says otherwise); ``forced_max_tokens``: length of a
    forced answer; ``thinking_end``: the text that closes the model's own thinking (e.g.
    ``</think>``), None = the stripped ``forced_suffix``.
    """

    episode_marker: str | None = None
    forced_suffix: str = "\nFinal answer: \\boxed{"
    forced_max_tokens: int = 16
    thinking_end: str | None = None

    @property
    def end_of_thinking(self) -> str:
        return self.thinking_end if self.thinking_end is not None else self.forced_suffix.strip()

    @property
    def joins_on_whitespace(self) -> bool:
        return self.forced_suffix[:1].isspace()

    def forced_text(self, prefix: str) -> str:
        """``prefix`` + the forced suffix. A suffix that starts with whitespace brings its own separator,
        so whitespace at the end of the prefix is dropped: a completion "... = 5. The answer is 5" has the
        thinking "... = 5. " (cut before "The answer is"), forced as "... = 5. The answer is" with one
        space, not two (and "...\n</think>" with the suffix "\n\nTime is up..." gets two newlines, not three)."""
        return (prefix.rstrip() if self.joins_on_whitespace else prefix) + self.forced_suffix

    def marker_regex(self) -> "re.Pattern | None":
        return re.compile(self.episode_marker) if self.episode_marker else None


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
    grading_budget: float | None = None  # seconds of grading per question (None: the Grader's default)
    model: str | None = None  # default model when --model is not given: a path or an EMBEDDED_MODELS name
    budget: BudgetSettings = BudgetSettings()

    def source_description(self) -> str:
        return self.source.describe()


_FIELD_ROLES = ("question", "answer", "id", "level", "choices", "answer_after", "meta")
_OPTIONAL_ROLES = ("id", "level", "answer_after", "meta")  # ROLE= (empty) drops them


def with_fields(task: Task, mapping: str) -> Task:
    """``task`` with columns remapped by a ``--fields`` string: ``question=problem,answer=solution``.

    Roles are those of a task's ``fields``; ``choices`` and ``meta`` take several
    columns separated by ``|`` (``choices=right|wrong1|wrong2``, correct first);
    ``id=``, ``level=``, ``answer_after=`` or ``meta=`` with no column drop that role.
    """
    changes: dict[str, object] = {}
    for item in mapping.split(","):
        role, sep, column = (part.strip() for part in item.partition("="))
        if not sep or not role or (not column and role not in _OPTIONAL_ROLES):
            raise UsageError(f"--fields: {item.strip()!r} is not ROLE=COLUMN; expected e.g. question=problem,answer=solution")
        if role not in _FIELD_ROLES:
            raise UsageError(f"--fields: unknown role {role!r}; expected one of {', '.join(_FIELD_ROLES)}")
        if role in changes:
            raise UsageError(f"--fields: role {role!r} is given twice")
        if role in ("choices", "meta"):
            changes[role] = tuple(c.strip() for c in column.split("|") if c.strip())
        else:
            changes[role] = column or None  # "level=": the file has no such column
    if task.answer_type == "choice" and ("answer" in changes or "answer_after" in changes):
        raise UsageError(f"--fields: task {task.name} is a choice task; map its options with choices=COL1|COL2|...")
    if task.answer_type != "choice" and "choices" in changes:
        raise UsageError(f"--fields: choices=... is only for choice tasks; task {task.name} has answer_type {task.answer_type}")
    if "choices" in changes and not 2 <= len(changes["choices"]) <= len(CHOICE_LETTERS):  # type: ignore[arg-type]
        raise UsageError(f"--fields: choices must list 2 to {len(CHOICE_LETTERS)} columns, the correct one first")
    fields = replace(task.fields, **changes)  # type: ignore[arg-type]
    columns = fields.columns()
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UsageError(f"--fields: column {repeated[0]!r} is used for two roles")
    return replace(task, fields=fields)


def _read_budget(top: Section) -> BudgetSettings:
    if not top.has("budget"):
        return BudgetSettings()
    b = top.section("budget", {"episode_marker", "forced_suffix", "forced_max_tokens", "thinking_end"})
    marker = b.text("episode_marker", None, nullable=True)
    if marker is not None:
        try:
            if re.compile(marker).match(""):
                raise b.error("episode_marker", "must be a regex that matches some text, not the empty string")
        except re.error as exc:
            raise b.error("episode_marker", f"must be a valid regex ({exc})") from None
    default = BudgetSettings()
    return BudgetSettings(episode_marker=marker, forced_suffix=b.free_text("forced_suffix", default.forced_suffix),
                          forced_max_tokens=b.integer("forced_max_tokens", default.forced_max_tokens, minimum=1),
                          thinking_end=b.text("thinking_end", None, nullable=True))


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
