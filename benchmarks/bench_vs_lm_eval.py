"""ttrl-bench's eval loop vs lm-evaluation-harness: ``python benchmarks/bench_vs_lm_eval.py``.

One run measures the same model on the same questions, with the same n samples per
question at the same temperature and token budget, on the same backend (transformers
``generate`` on CPU), with

- ttrl-bench: ``ttrl_bench.evaluate`` (what ``ttrl-bench eval --no-leaderboard`` runs);
- lm-eval: its CLI (``lm_eval run --model hf --model_args pretrained=DIR --include_path DIR``) on
  a local JSONL task written here: ``repeats: N`` with ``do_sample: true``, a regex answer
  filter, a ``majority_vote`` + ``take_first`` filter for maj@N (the pattern of lm-eval's
  ``gsm8k-cot-self-consistency``) and a mean-over-samples metric for pass@1 (the pattern of
  its ``humaneval_64``: one metric function over the list of a document's samples).

Each tool runs in a fresh Python process, so "wall" includes interpreter start, imports,
model load, sampling, grading and writing results, as a user sees it. Inside each process
``GenerationMixin.generate`` is wrapped to count calls, sequences and decode steps and to
record the first prompt's token ids (does it start with BOS?). lm-eval runs once per
``--lm-eval-batch-size`` (default: 64, then 1 = its CLI default); ratios are against the
first one.

Defaults: the embedded tiny model (``ttrl_bench/demo/model``; a random model of the same
architecture if it has not been trained yet, whose scores are meaningless but whose timing
is not) and the ``synth_near`` questions (``ttrl_bench.data.synthetic.test_split("near")``),
n 16, temperature 1.0, top-p 1, no top-k, 8 new tokens, until EOS; one torch thread per
process (``--threads``; see its help).

The two pass@1 values are compared with a paired test over questions (per-question
difference of the two c/n, its standard error over questions); a line says whether they
agree within noise; the first prompt each tool fed the model (as tokens: is there one BOS?)
and the shape of the completions are printed below the table, to find the cause if they do not.
Last, each tool's samples are graded by both tools' rules (sampling vs grading differences), and
the share of samples equal to the answer is tested against the exact probability of "answer then
EOS" computed by teacher forcing: a tool with |z| > 3 there does not sample the model as it is.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Run from a checkout without installing: the repository root holds the ttrl_bench package.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

TASK_NAME = "ttrl_bench_vs_lm_eval_synth"
ANSWER_REGEX = r"(-?[0-9]+)"  # every number; group_select -1 keeps the last, as ttrl-bench's integer rule
AGREE_Z = 3.0  # |paired difference| < 3 standard errors: "agree within noise"

# A metric over a document's samples, as lm-eval's humaneval_64 does it (``!function utils.x``
# over ``predictions=[list of samples]``). With the majority-vote filter the prediction is
# one string, and the same function is plain exact match.
LM_EVAL_UTILS = '''\
def mean_exact_match(references, predictions, **kwargs):
    gold = str(references[0]).strip()
    pred = predictions[0]
    if isinstance(pred, str):
        return float(pred.strip() == gold)
    return sum(str(p).strip() == gold for p in pred) / len(pred)
'''


# --------------------------------------------------------------------------- inputs


def build_random_model(out: Path) -> Path:
    """A deterministic random model of the embedded architecture (as tests/conftest.py builds its tiny model)."""
    import torch

    from ttrl_bench.demo.tokenizer import build_tokenizer
    from ttrl_bench.demo.training import make_model

    tokenizer = build_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = make_model(tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


LM_EVAL_TASK_YAML = """\
# Written by benchmarks/bench_vs_lm_eval.py: the synth_near questions as an offline lm-eval task.
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
num_fewshot: 0
repeats: {n}
generation_kwargs:
  until: []            # lm-eval's hf model adds the EOS string itself
  do_sample: true
  temperature: {temperature}
  top_p: 1.0
  top_k: 0
  max_gen_toks: {max_new_tokens}
filter_list:
  - name: all-samples  # every sample's answer (the last number, as ttrl-bench's integer rule)
    filter:
      - function: regex
        regex_pattern: "{regex}"
        group_select: -1
  - name: maj@{n}
    filter:
      - function: regex
        regex_pattern: "{regex}"
        group_select: -1
      - function: majority_vote
      - function: take_first
metric_list:
  - metric: !function utils.mean_exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_lm_eval_task(task_dir: Path, rows: list[dict], n: int, temperature: float, max_new_tokens: int) -> Path:
    """JSONL data, task YAML and its metric module for lm-eval's ``--include_path``."""
    task_dir.mkdir(parents=True, exist_ok=True)
    data = task_dir / "questions.jsonl"
    with open(data, "w") as fh:
        for row in rows:
            fh.write(json.dumps({"id": row["id"], "question": row["question"], "answer": row["answer"]}) + "\n")
    (task_dir / "utils.py").write_text(LM_EVAL_UTILS)
    (task_dir / f"{TASK_NAME}.yaml").write_text(LM_EVAL_TASK_YAML.format(
        task=TASK_NAME, data=json.dumps(str(data)), n=n, temperature=temperature, max_new_tokens=max_new_tokens,
        regex=ANSWER_REGEX,
    ))
    return task_dir


# --------------------------------------------------------------------------- workers (fresh processes)


class GenerateCounter:
    """Wraps ``GenerationMixin.generate``: calls, sequences, decode steps, generated tokens, first prompt."""

    def __init__(self):
        from transformers.generation.utils import GenerationMixin

        self.calls = self.sequences = self.steps = self.tokens = 0
        self.seconds = 0.0  # time inside generate
        self.first_call: float | None = None  # time.time() when the first generate call started
        self.first_prompt: list[int] | None = None
        original = GenerationMixin.generate
        counter = self

        def generate(model, *args, **kwargs):
            start = time.perf_counter()
            if counter.first_call is None:
                counter.first_call = time.time()
            out = original(model, *args, **kwargs)
            counter.seconds += time.perf_counter() - start
            inputs = kwargs.get("input_ids", args[0] if args else None)
            seqs = out.sequences if hasattr(out, "sequences") else out
            width = inputs.shape[1]
            pad = kwargs.get("pad_token_id", getattr(kwargs.get("generation_config"), "pad_token_id", None))
            new = seqs[:, width:]
            counter.calls += 1
            counter.sequences += seqs.shape[0]
            counter.steps += new.shape[1]
            counter.tokens += int((new != pad).sum()) if pad is not None else new.numel()
            if counter.first_prompt is None:
                counter.first_prompt = inputs[0].tolist()
            return out

        GenerationMixin.generate = generate

    def report(self) -> dict:
        import torch

        return {"torch_threads": torch.get_num_threads(), "generate_calls": self.calls, "sequences": self.sequences,
                "decode_steps": self.steps, "generated_tokens": self.tokens, "generate_seconds": self.seconds,
                "first_call": self.first_call, "first_prompt_ids": self.first_prompt}


def worker_ttrl(spec: dict) -> dict:
    counter = GenerateCounter()
    from ttrl_bench.pipeline.config import EvalConfig
    from ttrl_bench.pipeline.evaluate import evaluate

    cfg = EvalConfig(
        task="synth_near", model=spec["model"], n=spec["n"], temperature=spec["temperature"], top_p=1.0,
        top_k=0, max_new_tokens=spec["max_new_tokens"], limit=spec["limit"], seed=spec["seed"],
    )
    m = evaluate(cfg, Path(spec["out"]), progress=False)
    from ttrl_bench.measure.metrics import question_scores

    per_question = {}
    for grade, comps, score in zip(m.grades, m.completions, question_scores(m.grades)):
        per_question[grade.question_id] = {
            "c": sum(grade.correct), "n": grade.n, "maj": float(score.maj_correct),
            "answers": grade.answers, "texts": [c.text for c in comps],
        }
    scores = m.summary.scores
    return {"pass@1": scores["pass@1"]["mean"], "maj": scores[f"maj@{spec['n']}"]["mean"],
            "per_question": per_question, **counter.report()}


def lm_eval_argv(spec: dict) -> list[str]:
    return [
        "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={spec['model']},dtype=float32",
        "--tasks", TASK_NAME, "--include_path", spec["task_dir"],
        "--device", "cpu", "--batch_size", str(spec["batch_size"]),
        "--seed", str(spec["seed"]), "--output_path", spec["out"], "--log_samples",
    ]


def worker_lm_eval(spec: dict) -> dict:
    counter = GenerateCounter()
    from lm_eval.__main__ import cli_evaluate

    sys.argv = lm_eval_argv(spec)
    cli_evaluate()
    results_file = sorted(glob.glob(os.path.join(spec["out"], "**", "results_*.json"), recursive=True))[-1]
    results = json.loads(Path(results_file).read_text())["results"][TASK_NAME]
    samples_file = sorted(glob.glob(os.path.join(spec["out"], "**", f"samples_{TASK_NAME}_*.jsonl"), recursive=True))
    n = spec["n"]
    per_question, maj = {}, {}
    for line in Path(samples_file[-1]).read_text().splitlines():
        s = json.loads(line)
        if s["filter"] == f"maj@{n}":
            maj[s["doc"]["id"]] = s["mean_exact_match"]
        elif s["filter"] == "all-samples":
            answers, texts = _flat(s["filtered_resps"]), _flat(s["resps"])
            c = sum(a == s["target"] for a in answers)
            per_question[s["doc"]["id"]] = {"c": c, "n": len(answers), "answers": answers, "texts": texts}
    for qid, q in per_question.items():
        q["maj"] = maj[qid]
    return {"pass@1": results["mean_exact_match,all-samples"], "maj": results[f"mean_exact_match,maj@{n}"],
            "per_question": per_question, **counter.report()}


def _flat(resps: list) -> list[str]:
    """A document's samples from lm-eval's logged ``resps``: ``[[s1, ..., sN]]`` or ``[[s1], ..., [sN]]``."""
    if len(resps) == 1 and isinstance(resps[0], list):
        return list(resps[0])
    return [r[0] if isinstance(r, list) else r for r in resps]


def run_worker(kind: str, spec: dict, log_dir: Path) -> dict:
    """Run one tool in a fresh process; wall time is the whole process."""
    spec_file = log_dir / f"{kind}-{spec.get('batch_size', '')}.spec.json"
    result_file = spec_file.with_suffix(".result.json")
    spec_file.write_text(json.dumps({**spec, "result": str(result_file)}))
    log = spec_file.with_suffix(".log")
    env = dict(os.environ)
    if spec.get("threads"):  # 0/None: leave torch's default
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec["threads"])
    start, started_at = time.perf_counter(), time.time()
    with open(log, "w") as fh:
        cmd = [sys.executable, __file__, "--worker", kind, str(spec_file)]
        proc = subprocess.run(cmd, stdout=fh, stderr=fh, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{kind} worker failed (exit {proc.returncode}); log above and in {log}")
    result = json.loads(result_file.read_text())
    result["wall"] = wall
    result["startup"] = result["first_call"] - started_at if result["first_call"] else float("nan")
    return result


# --------------------------------------------------------------------------- comparison


def paired(a: dict, b: dict, score) -> tuple[float, float, int]:
    """Mean and standard error of the per-question difference score(a) - score(b) over shared questions."""
    ids = [q for q in a if q in b]
    diffs = [score(a[q]) - score(b[q]) for q in ids]
    return statistics.fmean(diffs), _stderr(diffs), len(ids)


def cross_grade(per_question: dict, gold: dict[str, str]) -> dict:
    """pass@1 of one tool's completion texts under both grading rules, and how often the rules differ.

    ttrl-bench's rule: last number (integer extraction), canonical number equal to the reference.
    lm-eval's rule as configured here: last regex match, string-equal to the reference.
    """
    import re

    from ttrl_bench.grading.canonical import canonical_form
    from ttrl_bench.grading.extract import extract_answer

    ours = theirs = differ = total = 0
    for qid, q in per_question.items():
        ref = canonical_form(gold[qid], "integer")
        for text in q["texts"]:
            answer = extract_answer(text, "integer")
            # digit answers of the synthetic task: plain numbers, equal exactly when their canonical strings are
            a = answer is not None and canonical_form(answer, "integer") == ref
            found = re.findall(ANSWER_REGEX, text)
            b = bool(found) and found[-1].strip() == gold[qid]
            ours, theirs, differ, total = ours + a, theirs + b, differ + (a != b), total + 1
    return {"ours": ours / total, "theirs": theirs / total, "differ": differ}


def exact_answer_probs(model_dir: Path, rows: list[dict], temperature: float) -> dict[str, float]:
    """P(completion = the reference answer, then EOS | prompt) at ``temperature``, by teacher forcing.

    The exact expected share of samples whose text is the answer: an arbiter for which tool's
    sampled estimate is off, if they disagree. Prompts are encoded as the tokenizer was saved
    (its post-processor adds BOS), as both tools do.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    probs = {}
    with torch.no_grad():
        for row in rows:
            prompt = tok(row["question"])["input_ids"]
            target = tok(row["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = torch.tensor([prompt + target])
            logp = torch.log_softmax(model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature, dim=-1)
            probs[row["id"]] = float(logp.gather(1, torch.tensor(target)[:, None]).sum().exp())
    return probs


def exact_text_check(per_question: dict, gold: dict[str, str], probs: dict[str, float]) -> tuple[float, float]:
    """Share of samples whose text is exactly the answer, and its z-score against the exact probabilities."""
    hits = sum(t.strip() == gold[qid] for qid, q in per_question.items() for t in q["texts"])
    total = sum(len(q["texts"]) for q in per_question.values())
    expected = sum(probs[qid] * len(q["texts"]) for qid, q in per_question.items())
    var = sum(probs[qid] * (1 - probs[qid]) * len(q["texts"]) for qid, q in per_question.items())
    return hits / total, (hits - expected) / math.sqrt(var) if var > 0 else float("nan")


def answer_shape(per_question: dict) -> dict:
    """What the completions look like: share ending without an answer, mean length in characters."""
    texts = [t for q in per_question.values() for t in q["texts"]]
    answers = [a for q in per_question.values() for a in q["answers"]]
    no_answer = sum(a is None or a == "[invalid]" for a in answers)
    return {"no_answer": no_answer / max(1, len(answers)), "mean_chars": statistics.fmean(len(t) for t in texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="local model directory (default: the embedded tiny model)")
    ap.add_argument("--limit", type=int, default=100, help="first K questions of synth_near (default: all 100)")
    ap.add_argument("-n", type=int, default=16, help="samples per question (default 16)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lm-eval-batch-size", default="64,1",
                    help="comma list; one lm-eval run each, ratios against the first "
                    "(default 64,1; 1 is lm-eval's CLI default)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in each tool's process; 0 = torch's default, one per core (default 1: for a "
                    "tiny model per-op overhead dominates, and on a shared 2-core machine 2 threads oversubscribed "
                    "the cores and made batch-1 generation ~35x slower)")
    ap.add_argument("--keep", type=Path, help="keep run directories, logs and the lm-eval task here")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, spec_file = args.worker
        spec = json.loads(Path(spec_file).read_text())
        result = (worker_ttrl if kind == "ttrl" else worker_lm_eval)(spec)
        Path(spec["result"]).write_text(json.dumps(result))
        return

    from tabulate import tabulate
    from transformers.utils import logging as hf_logging

    from ttrl_bench.data.synthetic import test_split
    from ttrl_bench.demo import EMBEDDED_MODEL

    hf_logging.disable_progress_bar()  # the workers' bars go to their logs; keep this output a report
    if args.limit < 1 or args.n < 1:
        raise SystemExit("--limit and -n must be >= 1")
    batch_sizes = [int(b) for b in args.lm_eval_batch_size.split(",") if b.strip()]
    tmp = tempfile.TemporaryDirectory(prefix="bench_vs_lm_eval-")
    root = args.keep or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)

    random_model = False
    if args.model:
        model = Path(args.model).resolve()
    elif (EMBEDDED_MODEL / "config.json").is_file():
        model = EMBEDDED_MODEL.resolve()
    else:
        model, random_model = build_random_model(root / "random-model"), True

    rows = test_split("near")[: args.limit]
    task_dir = write_lm_eval_task(root / "lm_eval_task", rows, args.n, args.temperature, args.max_new_tokens)
    common = {"model": str(model), "n": args.n, "temperature": args.temperature,
              "max_new_tokens": args.max_new_tokens, "limit": args.limit, "seed": args.seed, "threads": args.threads}
    logs = root / "logs"
    logs.mkdir(exist_ok=True)

    load_before = os.getloadavg()[0]
    results = [("ttrl-bench (evaluate, hf)", run_worker("ttrl", {**common, "out": str(root / "ttrl-run")}, logs))]
    for bs in batch_sizes:
        spec = {**common, "batch_size": bs, "task_dir": str(task_dir), "out": str(root / f"lm-eval-bs{bs}")}
        results.append((f"lm-eval {_lm_eval_version()} (hf, batch {bs})", run_worker("lm-eval", spec, logs)))

    ref_name, ref = results[1] if len(results) > 1 else results[0]
    sequences = len(rows) * args.n
    table = []
    for name, r in results:
        table.append({
            "tool": name,
            "wall s": r["wall"],
            "to 1st generate s": r["startup"],
            "in generate s": r["generate_seconds"],
            "samples/s": sequences / r["wall"],
            "pass@1": r["pass@1"],
            "± se": _stderr([q["c"] / q["n"] for q in r["per_question"].values()]),
            f"maj@{args.n}": r["maj"],
            "wall / lm-eval": r["wall"] / ref["wall"],
            "generate calls": r["generate_calls"],
            "sequences": r["sequences"],
            "decode steps": r["decode_steps"],
            "new tokens": r["generated_tokens"],
        })

    threads = sorted({r["torch_threads"] for _, r in results})
    print(f"bench_vs_lm_eval: {os.cpu_count()} cores, CPU, torch threads {'/'.join(map(str, threads))}, "
          f"load average before the run {load_before:.2f}, "
          f"model {model}{' (RANDOM: the embedded model is not trained yet)' if random_model else ''}")
    print(f"{len(rows)} synth_near questions x n={args.n}, temperature {args.temperature}, top-p 1, no top-k, "
          f"max {args.max_new_tokens} new tokens, until EOS; wall = a fresh process, incl. imports and model load; "
          f"'wall / lm-eval' is against {ref_name}")
    print("'to 1st generate' = process start to the first generate call (imports, model load, task setup); "
          "'in generate' = time inside transformers' generate")
    print(tabulate(table, headers="keys", floatfmt=".3f"))

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    base = results[0][1]["per_question"]
    print()
    for name, r in results[1:]:
        lm = r["per_question"]
        if set(lm) != set(base):
            print(f"WARNING: {name} measured other questions "
                  f"({len(lm)} vs {len(base)}, {len(set(lm) ^ set(base))} ids differ)")
        diff, se, k = paired(base, lm, lambda q: q["c"] / q["n"])
        z = abs(diff) / se if se > 0 else (0.0 if diff == 0 else float("inf"))
        verdict = "AGREE within noise" if z < AGREE_Z else f"DISAGREE (|z| >= {AGREE_Z:g}): not the same measurement"
        print(f"pass@1 ttrl-bench - {name}: {diff:+.4f} +- {se:.4f} "
              f"(paired over {k} questions, |z| = {z:.2f}): {verdict}")
        mdiff, mse, _ = paired(base, lm, lambda q: q["maj"])
        invalid_wins = sum(Counter(q["answers"]).most_common(1)[0][0] == "[invalid]" for q in lm.values())
        print(f"maj@{args.n} ttrl-bench - {name}: {mdiff:+.4f} +- {mse:.4f}; questions where lm-eval's vote "
              f"went to '[invalid]' (no number; ttrl-bench lets such samples not vote): {invalid_wins}")
    print()
    for name, r in results:
        ids = r["first_prompt_ids"] or []
        shape = answer_shape(r["per_question"])
        bos = ids.count(tok.bos_token_id) if tok.bos_token_id is not None else 0
        print(f"{name}: first prompt fed to generate {''.join(tok.convert_ids_to_tokens(ids))!r} "
              f"({bos} BOS{'' if bos == 1 else ' <- not one BOS'}); samples without an answer "
              f"{shape['no_answer']:.3f}; mean completion {shape['mean_chars']:.2f} chars")
    if random_model:
        print("note: the model is random, so both pass@1 are ~0 and their agreement says little; "
              "train the embedded model (python -m ttrl_bench.demo.train) for a meaningful check")
    print()
    gold = {row["id"]: row["answer"] for row in rows}
    print("each tool's samples graded by both rules (separates sampling from grading):")
    probs = exact_answer_probs(model, rows, args.temperature)
    exact = statistics.fmean(probs.values())
    cross = []
    for name, r in results:
        g = cross_grade(r["per_question"], gold)
        share, z = exact_text_check(r["per_question"], gold, probs)
        cross.append({"samples of": name, "pass@1, ttrl-bench rule": g["ours"], "pass@1, lm-eval rule": g["theirs"],
                      "graded differently": g["differ"], "text == answer": share,
                      "z vs exact": z})
    print(tabulate(cross, headers="keys", floatfmt=".4f"))
    print(f"exact: mean over questions of P(answer then EOS | prompt) at T={args.temperature} = {exact:.4f} "
          "(teacher-forced; what 'text == answer' estimates; |z vs exact| > 3 = that tool does not sample "
          "the model as it is)")
    print()
    print("same measurements by hand:")
    print("  ttrl-bench eval --task synth_near " + shlex.join([
        "--model", str(model), "-n", str(args.n), "--limit", str(args.limit), "--temperature", str(args.temperature),
        "--top-p", "1", "--top-k", "0", "--max-new-tokens", str(args.max_new_tokens), "--seed", str(args.seed),
        "--no-leaderboard"]))
    for bs in batch_sizes:
        spec = {**common, "batch_size": bs, "task_dir": str(task_dir), "out": str(root / f"lm-eval-bs{bs}")}
        print("  " + shlex.join(lm_eval_argv(spec)) + ("" if args.keep else "  (task dir: pass --keep DIR to keep it)"))
    if args.keep:
        print(f"run directories, logs and the lm-eval task kept in {root}")
    tmp.cleanup()


def _stderr(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


if __name__ == "__main__":
    main()
