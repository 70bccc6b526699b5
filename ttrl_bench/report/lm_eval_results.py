"""A measurement in lm-evaluation-harness 0.4's output layout, for lm-eval's readers and the tools built on them.

``DIR/<model name sanitized>/results_<date>.json`` and ``samples_<task>_<date>.jsonl``, named,
keyed and sanitised as ``lm_eval.loggers.EvaluationTracker`` writes them (``--output_path DIR
--log_samples``): ``results`` (``"metric,filter"`` keys with ``_stderr`` twins), ``configs``,
``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``, ``config`` (model and model args),
``task_hashes``; per document ``doc_id``, ``doc``, ``target``, ``arguments`` (``gen_args_0`` with
the prompt and the generation kwargs), ``resps`` (the N samples), ``filtered_resps``, ``filter``,
``metrics`` and one value per metric, and lm-eval's three hashes.

Mapping of ttrl-bench onto it: the metrics are ttrl-bench's (``pass@1`` = avg@N, ``maj@N``,
``pass@k``; fractions as lm-eval writes them), under the filter name ``extract`` (ttrl-bench's
answer extraction and math-verify equivalence); ``filtered_resps`` holds the majority answer, the
per-question voted answer maj@N grades. A native task's ``doc`` is its question (id, prompt,
reference, metadata); an lm-eval task's is lm-eval's own doc.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from ttrl_bench.measure.loop import Measurement
from ttrl_bench.measure.metrics import majority_vote
from ttrl_bench.measure.provenance import git_revision
from ttrl_bench.types import Question, SamplingParams

FILTER = "extract"


def sanitize_model_name(name: str) -> str:  # lm_eval.utils.sanitize_model_name, so paths match lm-eval's
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _hash(text: str) -> str:  # lm_eval.utils.hash_string
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_lm_eval_results(
    out_dir: Path, *, task_name: str, model_name: str, questions: Sequence[Question], measurement: Measurement,
    params: SamplingParams, model_args: dict[str, Any], task_config: dict[str, Any] | None = None,
    num_fewshot: int = 0, version: Any = None, date_id: str | None = None,
) -> tuple[Path, Path]:
    """Write the results and samples files; returns their paths. ``task_config``: the lm-eval
    task's own config (lm-eval tasks), else a summary of the ttrl-bench task is recorded."""
    date_id = date_id or datetime.now().isoformat().replace(":", "-")
    folder = Path(out_dir) / sanitize_model_name(model_name)
    folder.mkdir(parents=True, exist_ok=True)
    n = measurement.summary.n
    gen_kwargs = _gen_kwargs(params, questions)
    samples = [_sample(i, q, comps, g, gen_kwargs, n)
               for i, (q, comps, g) in enumerate(zip(questions, measurement.completions, measurement.grades))]
    task_hash = _hash("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
    scores = measurement.summary.scores
    metrics: dict[str, Any] = {"name": task_name, "alias": task_name, "sample_len": len(questions)}
    for key, value in scores.items():
        metrics[f"{key},{FILTER}"] = value["mean"]
        metrics[f"{key}_stderr,{FILTER}"] = value["stderr"]
    results = {
        "results": {task_name: metrics},
        "group_subtasks": {task_name: []},
        "configs": {task_name: task_config or {"task": task_name, "output_type": "generate_until",
                                               "repeats": n, "num_fewshot": num_fewshot,
                                               "generation_kwargs": gen_kwargs}},
        "versions": {task_name: version},
        "n-shot": {task_name: num_fewshot},
        "higher_is_better": {task_name: {key: True for key in scores}},
        "n-samples": {task_name: {"original": len(questions), "effective": len(questions)}},
        "config": {
            "model": "ttrl-bench", "model_args": model_args, "batch_size": None, "batch_sizes": [],
            "device": None, "use_cache": None, "limit": None, "bootstrap_iters": 0,
            "gen_kwargs": gen_kwargs, "random_seed": params.seed, "numpy_seed": params.seed,
            "torch_seed": params.seed, "fewshot_seed": 1234,
        },
        "git_hash": git_revision() or "unknown",  # ttrl-bench's revision
        "date": time.time(),
        "task_hashes": {task_name: task_hash},
        "model_source": "ttrl-bench",
        "model_name": model_name,
        "model_name_sanitized": sanitize_model_name(model_name),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None,
    }
    results_path = folder / f"results_{date_id}.json"
    samples_path = folder / f"samples_{task_name}_{date_id}.jsonl"
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    with open(samples_path, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s, ensure_ascii=False, default=str) + "\n")
    return results_path, samples_path


def _gen_kwargs(params: SamplingParams, questions: Sequence[Question]) -> dict[str, Any]:
    until = questions[0].meta.get("until") if questions else None
    kwargs: dict[str, Any] = {"until": list(until or []), "do_sample": not params.greedy,
                              "temperature": params.temperature, "top_p": params.top_p,
                              "max_gen_toks": params.max_new_tokens}
    if params.top_k:
        kwargs["top_k"] = params.top_k
    return kwargs


def _sample(index: int, q: Question, completions, grade, gen_kwargs: dict, n: int) -> dict[str, Any]:
    doc = q.meta.get("lm_eval_doc") or {"id": q.id, "prompt": q.prompt, "reference": q.reference,
                                         **{k: v for k, v in q.meta.items() if k != "until"}}
    target = q.meta.get("lm_eval_target", q.reference)
    vote = majority_vote(grade.classes, grade.class_correct)
    voted = None
    if vote.cls >= 0:
        voted = grade.answers[grade.classes.index(vote.cls)]  # the class's first answer as written
    correct = sum(grade.correct)
    sample = {
        "doc_id": int(q.meta.get("lm_eval_doc_id", index)),  # an lm-eval doc's own index, else the position
        "doc": doc,
        "target": str(target),
        # sanitised as EvaluationTracker.save_results_samples writes them (datasets can load the file)
        "arguments": {"gen_args_0": {"arg_0": q.prompt, "arg_1": gen_kwargs}},
        "resps": [[c.text for c in completions]],
        "filtered_resps": ["" if voted is None else voted],
        "filter": FILTER,
        "metrics": ["pass@1", f"maj@{n}"],
        "doc_hash": _hash(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
        "prompt_hash": _hash(q.prompt),
        "target_hash": _hash(str(target)),
        "pass@1": correct / n,
        f"maj@{n}": float(vote.correct),
    }
    return sample
