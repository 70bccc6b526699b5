"""issue 15, generalization: the held-out split, what TRL receives under --holdout, transfer rows
paired on the right question ids, the run report's tables and the base model's vote baseline.

The end-to-end runs use the tiny random model of conftest (one CPU process, a few GRPO steps)."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

import trl
from ttrl_bench.adapt.reward import GroupReward
from ttrl_bench.cli import main
from ttrl_bench.data.split import adapted_questions, split_ids
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import QuestionScore, Record, load_record, record_from_dict
from ttrl_bench.report.generalization import carry_over_sentence, generalization_table, holdout_table
from ttrl_bench.types import Question

# --- the split ------------------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_independent_of_row_order():
    ids = [f"q{i:03d}" for i in range(100)]
    a = split_ids(ids, 0.3, seed=7)
    assert a == split_ids(list(reversed(ids)), 0.3, seed=7) == split_ids(ids + ids[:5], 0.3, seed=7)
    assert len(a.held_out) == 30 and len(a.adapted) == 70
    assert not set(a.held_out) & set(a.adapted)
    assert set(a.held_out) | set(a.adapted) == set(ids)
    other = split_ids(ids, 0.3, seed=8)
    assert other.held_out != a.held_out  # the seed matters
    # held-out ids are spread over the set, not a block at either end
    assert min(a.held_out) < "q050" < max(a.held_out)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_fraction_outside_0_1_names_the_flag(fraction):
    with pytest.raises(UsageError, match="--holdout"):
        split_ids(["a", "b", "c"], fraction, 0)


def test_a_split_leaving_a_part_empty_is_refused():
    with pytest.raises(UsageError, match="empty"):
        split_ids(["a", "b", "c"], 0.1, 0)  # round(0.3) = 0 held out


def test_adapted_questions_keep_the_source_order():
    qs = [Question(id=f"q{i}", prompt=f"{i}+1=", reference=str(i + 1)) for i in range(10)]
    split = split_ids([q.id for q in qs], 0.5, 3)
    kept = adapted_questions(qs, split)
    assert [q.id for q in kept] == [q.id for q in qs if q.id in split.adapted]
    assert adapted_questions(qs, None) == qs


# --- records: backward compatible -------------------------------------------------------------------


def _rec(task, method, scores, *, n=4, maj=None, **changes) -> Record:
    """A record whose per-question c values are ``scores`` ({id: c}) out of n."""
    per_q = [QuestionScore(i, n, c, bool(maj and maj.get(i))) for i, c in scores.items()]
    mean = sum(c / n for c in scores.values()) / len(scores)
    fields = dict(model="m", model_fingerprint="fp", task=task, data_fingerprint=f"data-{task}", method=method,
                  metrics={"pass@1": {"mean": mean, "stderr": 0.0}, f"maj@{n}": {"mean": 0.0, "stderr": 0.0}},
                  per_question=per_q, sampling={"n": n})
    fields.update(changes)
    return Record(**fields)


def test_records_without_the_new_fields_still_load(tmp_path):
    data = json.loads(_rec("t", "ttrl", {"a": 1}).to_json())
    del data["adapted_on"], data["holdout"]
    rec = record_from_dict(data, "old.json")
    assert rec.adapted_on is None and rec.holdout is None and rec.origin == ""
    new = _rec("b", "ttrl", {"a": 1}, adapted_on="a", holdout={"fraction": 0.5, "seed": 1, "held_out_ids": ["x"]})
    path = tmp_path / new.filename
    path.write_text(new.to_json())
    assert load_record(path) == new
    # <model slug>-<hash of name and fingerprint>__<task>__<method>, then what tells a transfer / held-out result apart
    assert re.fullmatch(r"m-[0-9a-f]{8}__b__ttrl__from-a__holdout-0\.5-seed1\.json", new.filename)
    assert new.origin == "adapted on a, holdout 0.5 seed 1"


# --- transfer rows and held-out parts are paired on the right question ids -----------------------


def test_transfer_rows_pair_with_the_base_model_on_the_measured_task():
    base_a = _rec("A", "base", {"a0": 0, "a1": 0, "a2": 4, "a3": 4})
    base_b = _rec("B", "base", {"b0": 1, "b1": 2, "b2": 3, "b3": 0})
    ttrl_a = _rec("A", "ttrl", {"a0": 4, "a1": 4, "a2": 4, "a3": 4})
    # adapted on A, measured on B: +1 sample right on every B question (listed in another order)
    ttrl_b = _rec("B", "ttrl", {"b3": 1, "b2": 4, "b1": 3, "b0": 2}, adapted_on="A")
    table = generalization_table([base_a, ttrl_a, base_b, ttrl_b], maj_key="maj@4")
    rows = {tuple(c.strip() for c in line.split("|")[1:4]): line for line in table.splitlines() if line.startswith("| ")}
    assert "+25.0 ± 0.0" in rows[("A", "B", "ttrl")]  # paired on b-ids: every difference is exactly 1/4
    assert "+50.0 ± 28.9" in rows[("A", "A", "ttrl")]  # a-ids: diffs 1, 1, 0, 0 -> mean 0.5, s.e. 0.289
    wrong = _rec("B", "ttrl", {"a0": 1, "a1": 1, "a2": 1, "a3": 1}, adapted_on="A")
    with pytest.raises(UsageError, match="question ids do not pair"):
        generalization_table([base_a, base_b, wrong], maj_key="maj@4")


def test_holdout_table_splits_gains_by_part_and_says_whether_they_carry_over():
    ids = [f"q{i}" for i in range(8)]
    held = ids[4:]
    base = _rec("A", "base", {i: 0 for i in ids})
    # adapted part: all right (+100 points); held out: 2 of 4 questions right (+50 ± 28.9)
    ttrl = _rec("A", "ttrl", {**{i: 4 for i in ids[:4]}, "q4": 4, "q5": 4, "q6": 0, "q7": 0},
                holdout={"fraction": 0.5, "seed": 0, "held_out_ids": held})
    text = holdout_table([base, ttrl], held, maj_key="maj@4")
    lines = [line for line in text.splitlines() if line.startswith("| ttrl")]
    assert "adapted (in-sample)" in lines[0] and "+100.0 ± 0.0" in lines[0]
    assert "held out" in lines[1] and "+50.0 ± 28.9" in lines[1]
    assert "difference (held-out − in-sample) -50.0 ± 28.9" in text
    assert "4 of 8 questions never reached adaptation" in text


@pytest.mark.parametrize("gain_in, gain_out, verdict", [
    ((0.30, 0.02), (0.29, 0.03), "carries over to unseen questions"),
    ((0.30, 0.02), (0.10, 0.02), "only in part"),
    ((0.30, 0.02), (0.01, 0.02), "does not carry over"),
    ((0.01, 0.02), (0.00, 0.02), "no significant in-sample gain"),
])
def test_carry_over_sentence(gain_in, gain_out, verdict):
    sentence = carry_over_sentence("ttrl", gain_in, gain_out)
    assert verdict in sentence and sentence.count(".") >= 1 and "\n" not in sentence


# --- end to end: what TRL receives under --holdout; the vote baseline ----------------------------------


def run_argv(model_dir, out, *extra):
    return ["run", "--model", str(model_dir), "-n", "4", "--prompts-per-step", "2", "--samples", "4",
            "--out", str(out), "--no-leaderboard", "--limit", "8", "--steps", "3", "--eval-every", "3", *extra]


@pytest.fixture(scope="module")
def holdout_run(tiny_model_dir, tmp_path_factory):
    """--holdout 0.5 with ttrl and leakage, 6 votes for 4 samples; spies on the trainer and the reward."""
    seen = SimpleNamespace(datasets=[], reward_ids=[], reward_refs=[])
    real_init, real_call = trl.GRPOTrainer.__init__, GroupReward.__call__

    def spy_init(self, *args, train_dataset=None, **kw):
        seen.datasets.append(list(train_dataset["question_id"]))
        real_init(self, *args, train_dataset=train_dataset, **kw)

    def spy_call(self, prompts, completions, *args, question_id=None, reference=None, **kw):
        seen.reward_ids.append((self.method, list(question_id)))
        seen.reward_refs.append(list(reference))
        return real_call(self, prompts, completions, *args, reference=reference, question_id=question_id, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(trl.GRPOTrainer, "__init__", spy_init)
    mp.setattr(GroupReward, "__call__", spy_call)
    out = tmp_path_factory.mktemp("holdout") / "out"
    try:
        rc = main(run_argv(tiny_model_dir, out, "--methods", "ttrl,leakage", "--holdout", "0.5",
                           "--holdout-seed", "5", "--votes", "6"))
    finally:
        mp.undo()
    base_ids = [json.loads(line)["question_id"] for line in (out / "base" / "samples.jsonl").read_text().splitlines()]
    split = split_ids(set(base_ids), 0.5, 5)
    return SimpleNamespace(rc=rc, out=out, seen=seen, split=split)


def test_held_out_questions_never_reach_the_trainer_or_the_reward(holdout_run):
    assert holdout_run.rc == 0
    seen, split = holdout_run.seen, holdout_run.split
    assert len(split.held_out) == 4 and len(split.adapted) == 4
    assert len(seen.datasets) == 2  # ttrl and leakage: the same split for the upper bound
    for ids in seen.datasets:
        assert sorted(ids) == list(split.adapted)
    called = {m for m, _ in seen.reward_ids}
    assert called == {"ttrl", "leakage"}
    rewarded = {i for _, ids in seen.reward_ids for i in ids}
    assert rewarded and rewarded <= set(split.adapted)
    assert not rewarded & set(split.held_out)


def test_holdout_is_recorded_in_config_record_and_report(holdout_run):
    out, split = holdout_run.out, holdout_run.split
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["holdout"] == {"fraction": 0.5, "seed": 5}
    rec = json.loads(next((out / "ttrl" / "records").glob("*.json")).read_text())
    assert rec["holdout"] == {"fraction": 0.5, "seed": 5, "held_out_ids": list(split.held_out)}
    assert len(rec["per_question"]) == 8  # measured on every question; the report splits them
    spec = json.loads((out / "leakage" / "spec.json").read_text())
    assert (spec["holdout_fraction"], spec["holdout_seed"]) == (0.5, 5)
    report = (out / "report.md").read_text()
    assert "Held-out questions (--holdout 0.5, --holdout-seed 5)" in report
    assert report.count("held-out gain") == 2  # one sentence per method


def test_base_is_sampled_max_n_votes_times_and_reports_the_vote_baseline(holdout_run):
    out = holdout_run.out
    counts = {json.loads(line)["num_samples"] for line in (out / "base" / "samples.jsonl").read_text().splitlines()}
    assert counts == {6}  # max(-n 4, --votes 6)
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["base_samples"] == 6
    base = json.loads(next((out / "base" / "records").glob("*.json")).read_text())
    assert {q["n"] for q in base["per_question"]} == {4}  # base scores use the first N, like adapted ones
    assert {"pass@1", "maj@4", "maj@6"} <= base["metrics"].keys()
    vb = base["extra"]["vote_baseline"]
    assert vb["votes"] == 6 and vb["samples_per_question"] == 6 and len(vb["maj_correct"]) == 8
    assert base["metrics"]["maj@6"]["mean"] == pytest.approx(sum(vb["maj_correct"].values()) / 8)
    report = (out / "report.md").read_text()
    assert "base maj@6 (vote baseline)" in report and "pass@1 − base maj@6" in report


def test_eval_tasks_and_holdout_flags_are_checked_before_anything_is_written(tiny_model_dir, tmp_path, capsys):
    cases = [
        (["--eval-tasks", "no_such_task"], "--eval-tasks: unknown task 'no_such_task'"),
        (["--eval-tasks", "synth_near"], "--eval-tasks: 'synth_near' is the task adapted on"),
        (["--holdout", "1.0"], "--holdout: must be a fraction"),
        (["--holdout-seed", "3"], "--holdout-seed: needs --holdout"),
    ]
    for i, (flags, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert main(run_argv(tiny_model_dir, out, "--methods", "ttrl", *flags)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"ttrl-bench: error: {message}"), err
        assert not out.exists()
