"""Task YAML files: the shipped ones validate, and every kind of bad file is a one-line UsageError
that names the file and the field."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from ttrl_bench.errors import UsageError
from ttrl_bench.tasks.registry import DEFAULT_TASKS_DIR, TASKS_ENV, Prompt, get_task, load_task_file, load_tasks

SHIPPED = {"aime24", "aime25", "amc23", "math500", "gpqa_diamond", "gsm8k", "synth_near", "synth_shift",
           "synth_episodes"}
REAL = SHIPPED - {"synth_near", "synth_shift", "synth_episodes"}

HUB_TASK = {
    "name": "demo",
    "description": "a hub task",
    "source": {"hub": "owner/data", "revision": "0123456789abcdef0123456789abcdef01234567", "split": "test"},
    "fields": {"question": "problem", "answer": "answer", "level": "level"},
    "prompt": {"template": "{question}", "suffix": "Box it.", "chat_template": True},
    "answer_type": "math",
    "generation": {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_new_tokens": 64},
}
CHOICE_TASK = {
    **HUB_TASK,
    "fields": {"question": "q", "choices": ["right", "wrong1", "wrong2"]},
    "prompt": {"template": "{question}\n{choices}", "chat_template": False},
    "answer_type": "choice",
    "choice_seed": 7,
}


def write_task(directory: Path, data, name: str = "demo", suffix: str = ".yaml") -> Path:
    path = directory / f"{name}{suffix}"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_shipped_task_loads_and_validates():
    tasks = load_tasks(DEFAULT_TASKS_DIR)
    assert set(tasks) == SHIPPED
    for name, task in tasks.items():
        assert task.path == DEFAULT_TASKS_DIR / f"{name}.yaml"
        assert task.description
        if name in REAL:
            # pinned, full-sha revisions; the paper's protocol and instruction
            assert re.fullmatch(r"[0-9a-f]{40}", task.source.revision), name
            assert task.prompt.chat_template == "auto"  # plain text for base models, the template for chat ones
            assert "\\boxed{}" in task.prompt.suffix
            assert (task.generation.n, task.generation.temperature, task.generation.top_p) == (16, 0.6, 0.95)
        else:
            assert task.source.builtin == "synthetic"
            assert (task.prompt.template, task.prompt.suffix, task.prompt.chat_template) == ("{question}", "", False)
            assert task.answer_type == "integer"
            g = task.generation
            # the episodes task's answers are attempts plus a vote: longer
            length = 32 if name == "synth_episodes" else 8
            assert (g.n, g.temperature, g.top_p, g.top_k, g.max_new_tokens) == (16, 1.0, 1.0, 0, length)
    assert tasks["math500"].fields.level == "level"
    assert tasks["gpqa_diamond"].answer_type == "choice" and tasks["gpqa_diamond"].choice_seed is not None
    assert tasks["gpqa_diamond"].fields.choices[0] == "Correct Answer"
    assert tasks["gsm8k"].fields.answer_after == "####"
    episodes = tasks["synth_episodes"]
    assert episodes.model == "embedded:episodes" and tasks["synth_near"].model is None
    assert (episodes.budget.episode_marker, episodes.budget.forced_suffix) == (";", ">")


def test_source_description_names_the_source():
    tasks = load_tasks(DEFAULT_TASKS_DIR)
    assert tasks["gsm8k"].source_description() == "hub openai/gsm8k:main@740312a, split test"
    assert tasks["synth_shift"].source_description() == "builtin synthetic, split shift"


def _set(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


class _Delete:
    """Marks a field to remove from the YAML; a stable repr keeps test ids equal across processes (xdist)."""

    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()

BAD_FIELDS = [
    # (base, dotted field, new value, field named in the message, words of the expectation)
    (HUB_TASK, "generation.n", 0, "generation.n", "must be an integer >= 1, got the number 0"),
    (HUB_TASK, "generation.n", True, "generation.n", "must be an integer >= 1, got the boolean true"),
    (HUB_TASK, "generation.nn", 4, "generation.nn", "is unknown; expected one of max_new_tokens, n,"),
    (HUB_TASK, "answertype", "math", "answertype", "is unknown"),
    (HUB_TASK, "generation.temperature", "hot", "generation.temperature", "must be a number >= 0, got the text 'hot'"),
    (HUB_TASK, "generation.top_p", 0, "generation.top_p", "must be a number > 0 and <= 1"),
    (HUB_TASK, "generation.top_k", -1, "generation.top_k", "must be an integer >= 0"),
    (HUB_TASK, "answer_type", "float", "answer_type", "must be one of math, integer, choice"),
    (HUB_TASK, "prompt.chat_template", "yes", "prompt.chat_template", "must be true, false or auto"),
    (HUB_TASK, "fields.question", _DELETE, "fields.question", "is missing"),
    (HUB_TASK, "fields.meta", "subject", "fields.meta", "must be a list of non-empty texts"),
    (HUB_TASK, "fields.answer", "problem", "fields", "must not use column 'problem' twice"),
    (HUB_TASK, "source.builtin", "synthetic", "source", "exactly one of 'hub'"),
    (HUB_TASK, "source.revision", "0123abc", "source.revision", "full 40-character commit sha"),
    (HUB_TASK, "source.revision", _DELETE, "source.revision", "is missing"),
    (HUB_TASK, "source.hub", "just-a-name", "source.hub", "'owner/name'"),
    (HUB_TASK, "source", "owner/data", "source", "must be a mapping"),
    (HUB_TASK, "prompt.template", "{questoin}", "prompt.template", "placeholders {question}, not {questoin}"),
    (HUB_TASK, "prompt.template", "Solve.", "prompt.template", "must contain the placeholder {question}"),
    (HUB_TASK, "choice_seed", 3, "choice_seed", "is only for answer_type choice"),
    (HUB_TASK, "grading_budget", 0, "grading_budget", "must be a number > 0"),
    (HUB_TASK, "grading_budget", "long", "grading_budget", "must be a number > 0"),
    (HUB_TASK, "fields.choices", ["a", "b"], "fields.choices", "is only for answer_type choice"),
    (HUB_TASK, "name", "other", "name", "must equal the file name 'demo'"),
    (CHOICE_TASK, "choice_seed", _DELETE, "choice_seed", "is missing"),
    (CHOICE_TASK, "prompt.template", "{question}", "prompt.template", "must contain the placeholder {choices}"),
    (CHOICE_TASK, "fields.answer", "right", "fields.answer", "is not used by choice tasks"),
    (CHOICE_TASK, "fields.choices", ["right"], "fields.choices", "must list 2 to"),
    ({**HUB_TASK, "source": {"builtin": "synthetic", "split": "near"}}, "source.split", "far",
     "source.split", "must be one of near, shift"),
    ({**HUB_TASK, "source": {"builtin": "synthetic", "split": "near"}}, "source.revision",
     "0123456789abcdef0123456789abcdef01234567", "source.revision", "applies to hub sources only"),
]


@pytest.mark.parametrize("base,dotted,value,named,expected", BAD_FIELDS,
                         ids=[f"{case[1]}={case[2]!r}" for case in BAD_FIELDS])
def test_bad_field_names_file_and_field(tmp_path, base, dotted, value, named, expected):
    path = write_task(tmp_path, _set(base, dotted, value))
    with pytest.raises(UsageError) as caught:
        load_task_file(path)
    message = str(caught.value)
    assert str(path.name) in message
    assert f"field '{named}'" in message
    assert expected in message
    assert "\n" not in message


def test_base_cases_are_valid(tmp_path):
    # the bad-field cases above differ from these in one field only
    assert load_task_file(write_task(tmp_path, HUB_TASK)).fields.level == "level"
    choice = load_task_file(write_task(tmp_path, CHOICE_TASK))
    assert choice.choice_seed == 7 and choice.fields.answer is None


def test_grading_budget_is_an_optional_task_field(tmp_path):
    assert load_task_file(write_task(tmp_path, HUB_TASK)).grading_budget is None
    assert load_task_file(write_task(tmp_path, {**HUB_TASK, "grading_budget": 12.5})).grading_budget == 12.5


def test_malformed_yaml_names_file_and_line(tmp_path):
    text = "name: demo\nanswer_type: math\ndescription: ratio: 2\n"  # a second ': ' on line 3
    path = write_task(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_task_file(path)
    message = str(caught.value)
    assert path.name in message
    assert "line 3: not valid YAML (mapping values are not allowed here)" in message
    assert "\n" not in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write_task(tmp_path, "- name: demo\n")
    with pytest.raises(UsageError, match=r"demo\.yaml: expected a YAML mapping of fields at the top level, got a list"):
        load_task_file(path)


def test_yaml_tags_are_not_executed(tmp_path):
    # safe_load: a Python object tag is refused, never constructed
    path = write_task(tmp_path, "name: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_task_file(path)


def test_unknown_task_lists_known_names(tmp_path):
    write_task(tmp_path, HUB_TASK)
    with pytest.raises(UsageError) as caught:
        get_task("aime42", tmp_path)
    assert "unknown task 'aime42'" in str(caught.value)
    assert "known tasks: demo" in str(caught.value)


def test_unknown_task_in_the_shipped_directory_lists_all_of_them():
    with pytest.raises(UsageError) as caught:
        get_task("aime42")
    assert all(name in str(caught.value) for name in SHIPPED)


def test_env_var_overrides_the_default_directory(tmp_path, monkeypatch):
    write_task(tmp_path, HUB_TASK)
    monkeypatch.setenv(TASKS_ENV, str(tmp_path))
    assert list(load_tasks()) == ["demo"]
    assert get_task("demo").source.hub == "owner/data"


def test_missing_tasks_directory(tmp_path):
    with pytest.raises(UsageError, match=f"no such tasks directory.*{TASKS_ENV}"):
        load_tasks(tmp_path / "nowhere")


def test_one_bad_file_fails_the_registry(tmp_path):
    write_task(tmp_path, HUB_TASK)
    write_task(tmp_path, _set(HUB_TASK, "name", "other") | {"generation": {"n": 1}}, name="other")
    with pytest.raises(UsageError, match=r"other\.yaml: field 'generation.temperature' is missing"):
        load_tasks(tmp_path)


def test_same_name_in_two_files(tmp_path):
    write_task(tmp_path, HUB_TASK)
    write_task(tmp_path, HUB_TASK, suffix=".yml")
    with pytest.raises(UsageError, match="task 'demo' is also defined in"):
        load_tasks(tmp_path)


def test_get_task_accepts_a_yaml_path(tmp_path):
    path = write_task(tmp_path, HUB_TASK)
    assert get_task(str(path)).path == path


def test_prompt_render_choices_suffix_and_literal_braces():
    prompt = Prompt(template="Q: {question}\n{choices}", suffix="Answer with a letter in \\boxed{}.")
    text = prompt.render("Is {x} in {choices}?", ["yes", "no"])
    assert text == "Q: Is {x} in {choices}?\nA) yes\nB) no\nAnswer with a letter in \\boxed{}."
    assert Prompt().render("1+2=") == "1+2="


def test_generation_defaults_become_sampling_params():
    params = load_tasks(DEFAULT_TASKS_DIR)["gsm8k"].generation.sampling_params(seed=3)
    assert (params.n, params.temperature, params.top_p, params.top_k, params.seed) == (16, 0.6, 0.95, 0, 3)
    assert params.max_new_tokens == 1024


@pytest.mark.parametrize("budget,field,needle", [
    ({"episode_marker": "(unclosed"}, "budget.episode_marker", "valid regex"),
    ({"episode_marker": "x*"}, "budget.episode_marker", "empty string"),
    ({"forced_max_tokens": 0}, "budget.forced_max_tokens", ">= 1"),
    ({"forced_suffix": 3}, "budget.forced_suffix", "text"),
    ({"marker": ";"}, "budget.marker", "unknown"),
])
def test_bad_budget_settings_name_the_field(tmp_path, budget, field, needle):
    import yaml

    data = yaml.safe_load((DEFAULT_TASKS_DIR / "synth_episodes.yaml").read_text())
    data["budget"] = budget
    path = tmp_path / "synth_episodes.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UsageError) as info:
        load_task_file(path)
    assert field in str(info.value) and needle in str(info.value)
