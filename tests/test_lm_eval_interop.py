"""lm-evaluation-harness in and out, offline: a local-file lm-eval task (``dataset_path: json``) as
``--task lm_eval:NAME`` and as a task YAML with ``source: {lm_eval: NAME}``, and ``--lm-eval-results``
read back with lm-eval's own readers (``lm_eval.utils`` file helpers and ``make_table``, its result
schema, and the HF ``datasets`` JSON loader its samples files are sanitised for)."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from ttrl_bench.cli import main
from ttrl_bench.data import load_questions
from ttrl_bench.data import synthetic
from ttrl_bench.tasks import get_task

ROWS = synthetic.test_split("near")[:24]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def write_task(folder: Path, name: str, *, shots: int = 0, output_type: str = "generate_until", target: str = "{{answer}}") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"],
                                        "solution": f"add them #### {r['answer']}"}) + "\n" for r in ROWS))
    train = folder / f"{name}_train.jsonl"
    train.write_text("".join(json.dumps({"question": f"{a}+{a}=", "answer": str(2 * a), "solution": f"#### {2 * a}"}) + "\n"
                             for a in range(100, 110)))
    extra = ("doc_to_choice: ['{{answer}}', '0']\n" if output_type == "multiple_choice" else
             "generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 8\n  do_sample: true\n  temperature: 1.0\nrepeats: 8\n")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n    train: {train}\n"
        f"output_type: {output_type}\ntest_split: test\nfewshot_split: train\nnum_fewshot: {shots}\n"
        f"doc_to_text: '{{{{question}}}}'\ndoc_to_target: '{target}'\ntarget_delimiter: ''\nfewshot_delimiter: \"\\n\"\n"
        f"{extra}metric_list:\n  - metric: exact_match\nmetadata:\n  version: 2.0\n")
    return folder


def test_questions_are_built_by_lm_eval_from_a_local_file(tmp_path):
    folder = write_task(tmp_path / "tasks", "sums_fewshot", shots=2, target="{{solution}}")
    task = get_task("lm_eval:sums_fewshot", lm_eval_include_path=str(folder))
    # the task's own generation settings (repeats, max_gen_toks, sampling) and the answer type from its targets
    assert (task.generation.n, task.generation.max_new_tokens, task.generation.temperature) == (8, 8, 1.0)
    assert task.answer_type == "integer"
    questions = load_questions(task, limit=5)
    assert [q.id for q in questions] == ["0", "1", "2", "3", "4"]
    for q, row in zip(questions, ROWS):
        assert q.reference == row["answer"]  # "#### N" reduced to N
        shots = q.prompt.split("\n")
        assert len(shots) == 3 and shots[-1] == row["question"]  # 2 fewshot examples from the train split, then the doc
        assert all(s.startswith("10") and "=" in s and "####" in s for s in shots[:2])
        assert q.meta["until"] == ["\n"] and q.meta["lm_eval_doc"]["question"] == row["question"]
    assert [q.prompt for q in load_questions(task, limit=5)] == [q.prompt for q in questions]  # fewshot seeded


def test_a_non_generative_task_is_refused_with_one_line(tmp_path):
    folder = write_task(tmp_path / "tasks", "sums_mc", output_type="multiple_choice", target="0")
    code, _, err = run_cli(["eval", "--task", "lm_eval:sums_mc", "--lm-eval-include-path", str(folder), "--out", str(tmp_path / "r")])
    assert code == 2 and err.count("\n") == 1 and "output_type is 'multiple_choice'" in err
    code, _, err = run_cli(["eval", "--task", "synth_near", "--lm-eval-include-path", str(folder), "--out", str(tmp_path / "r")])
    assert code == 2 and err.count("\n") == 1 and "--lm-eval-include-path" in err
    assert not (tmp_path / "r").exists()


def test_an_lm_eval_task_under_ttrl_bench_matches_the_native_task_and_exports_lm_eval_results(tmp_path):
    """The same 24 questions as a zero-shot lm-eval task and as the native synth_near: same prompts, same
    references, pass@1 within noise (different question ids seed different draws); then the results
    files are read with lm-eval's readers."""
    write_task(tmp_path / "tasks", "sums")  # found through the task file's include_path: tasks
    yaml_task = tmp_path / "sums_ttrl.yaml"
    yaml_task.write_text("name: sums_ttrl\ndescription: sums through lm-eval\nsource:\n  lm_eval: sums\n  include_path: tasks\n"
                         "answer_type: integer\ngeneration:\n  n: 16\n  temperature: 1.0\n  top_p: 1.0\n  max_new_tokens: 8\n")
    lm_dir = tmp_path / "lm"
    runs = {}
    for name, task_args in {"lm_eval": ["--task", str(yaml_task)],
                            "native": ["--task", "synth_near", "--limit", "24"]}.items():
        code, _, err = run_cli(["eval", *task_args, "--out", str(tmp_path / name), "--no-leaderboard", "--threads", "1",
                                "--lm-eval-results", str(lm_dir / name)])
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    lm_q = load_questions(get_task(str(yaml_task)))
    native_q = load_questions(get_task("synth_near"), limit=24)
    assert [(q.prompt, q.reference) for q in lm_q] == [(q.prompt, q.reference) for q in native_q]
    a, b = runs["lm_eval"]["scores"]["pass@1"], runs["native"]["scores"]["pass@1"]
    assert abs(a["mean"] - b["mean"]) <= 3 * math.hypot(a["stderr"], b["stderr"])

    # --- read back with lm-eval's own helpers ---
    from lm_eval import utils as lm_utils

    files = [str(p) for p in (lm_dir / "lm_eval").rglob("*") if p.is_file()]
    results_file = lm_utils.get_latest_filename(lm_utils.get_results_filenames(files))
    samples_file = lm_utils.get_latest_filename(lm_utils.get_sample_results_filenames(files))
    assert lm_utils.get_file_task_name(Path(samples_file).name) == "sums"
    assert lm_utils.get_file_datetime(Path(results_file).name).removesuffix(".json") == lm_utils.get_file_datetime(Path(samples_file).name)
    results = json.loads(Path(results_file).read_text())
    assert {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config"} <= results.keys()
    assert results["results"]["sums"]["pass@1,extract"] == pytest.approx(a["mean"])
    assert results["results"]["sums"]["pass@1_stderr,extract"] == pytest.approx(a["stderr"])
    assert results["configs"]["sums"]["dataset_path"] == "json"  # lm-eval's own task config
    assert results["versions"]["sums"] == 2.0 and results["n-shot"]["sums"] == 0
    table = lm_utils.make_table(results)
    assert "sums" in table and "pass@1" in table and "maj@16" in table and "extract" in table

    _check_against_lm_eval_schema(results, [json.loads(line) for line in Path(samples_file).read_text().splitlines()])
    import datasets

    rows = datasets.load_dataset("json", data_files=samples_file, split="train", cache_dir=str(tmp_path / "cache"))
    assert len(rows) == 24 and len(rows[0]["resps"][0]) == 16
    assert rows[0]["doc"]["question"] == ROWS[0]["question"] and rows[0]["target"] == ROWS[0]["answer"]
    assert rows[0]["arguments"]["gen_args_0"]["arg_0"] == ROWS[0]["question"]
    grades = [json.loads(line) for line in (tmp_path / "lm_eval" / "grades.jsonl").read_text().splitlines()]
    for row, grade in zip(rows, grades):
        assert row["pass@1"] == pytest.approx(sum(c >= 0 and grade["class_correct"][c] for c in grade["classes"]) / 16)


def _check_against_lm_eval_schema(results: dict, samples: list[dict]) -> None:
    """Validate against lm-eval's own TypedDicts (lm_eval.result_schema) with pydantic. Not "configs": its
    annotation (flat str/bool values) is looser than what lm-eval itself dumps there (ints, nested dicts)."""
    import pydantic
    from lm_eval import result_schema

    checked = {k: v for k, v in results.items() if k != "configs"}
    pydantic.TypeAdapter(result_schema.EvalResults).validate_python(checked, strict=False)
    adapter = pydantic.TypeAdapter(result_schema.SampleResult)
    for s in samples:
        adapter.validate_python(s, strict=False)


def test_the_training_reward_cuts_completions_at_the_tasks_stop_strings():
    """An lm-eval task's ``until`` reaches the reward as a dataset column: the vote sees what grading sees."""
    from ttrl_bench.adapt.reward import GroupReward
    from ttrl_bench.grading import Grader

    with Grader(timeout_seconds=5.0, workers=1) as grader:
        reward = GroupReward("ttrl", answer_type="integer", grader=grader, group_size=4, votes=4, seed=0)
        texts = ["12\n99", "12\n98", "12\n97", "13\n12"]
        cut = reward(["p"] * 4, texts, reference=["12"] * 4, until=[json.dumps(["\n"])] * 4)
        whole = reward(["p"] * 4, texts, reference=["12"] * 4, until=[json.dumps([])] * 4)
    assert cut == [1.0, 1.0, 1.0, 0.0]  # answers 12, 12, 12, 13: the majority is 12
    assert whole == [1.0, 0.0, 0.0, 0.0]  # answers 99, 98, 97, 12: a four-way tie, the first class wins
