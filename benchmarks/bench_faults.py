"""Fault injection: random SIGKILLs of `eval` and `run` with resume, and bad inputs.

    python benchmarks/bench_faults.py [--eval-kills 20] [--run-kills 20] [--seed 0] [--keep DIR]

Every kill hits the command's whole process group (the command, its grading workers, anything it
started) at a uniformly random moment of an uninterrupted run's wall time, and the same command is
then re-run to completion. A resumed run counts as identical when its samples (and, for `run`, the
adapted weights, the final metrics and the train log without wall-clock fields) equal the
uninterrupted run's byte for byte. Bad inputs are the issue's list; each must answer with exactly one
line on stderr, nothing on stdout, exit 2 and no file left in the working directory.
Uses the embedded model (nothing to download); prints one table.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent
EVAL = ["eval", "--limit", "48", "-n", "16", "--seed", "3", "--threads", "1"]
RUN = ["run", "--limit", "8", "-n", "4", "--steps", "12", "--prompts-per-step", "2", "--samples", "4", "--votes", "4",
       "--eval-every", "4", "--save-every", "1", "--methods", "ttrl", "--seed", "7", "--threads", "1"]


def env() -> dict[str, str]:
    e = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [e.get("PYTHONPATH")])])
    return e


def cli(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def finish(args: list[str], cwd: Path) -> tuple[int, float]:
    started = time.monotonic()
    proc = cli(args, cwd)
    proc.communicate()
    return proc.returncode, time.monotonic() - started


def kill_after(args: list[str], cwd: Path, delay: float) -> bool:
    """SIGKILL the command's process group after ``delay`` s; False if it had already finished."""
    proc = cli(args, cwd)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def sample_rows(path: Path) -> list[tuple[str, int]]:
    return [(r["question_id"], r["sample_index"]) for r in map(json.loads, path.read_text().splitlines())]


def run_results(out: Path) -> dict:
    log = [{k: v for k, v in json.loads(line).items() if k != "step_time"}
           for line in (out / "ttrl" / "train_log.jsonl").read_text().splitlines()]
    files = ("base/samples.jsonl", "ttrl/samples.jsonl", "ttrl/metrics.json", "ttrl/model/model.safetensors")
    return {"log": log, **{f: (out / f).read_bytes() for f in files}}


def kill_trials(kind: str, n: int, rng: random.Random, root: Path) -> list:
    args, samples = (EVAL, "samples.jsonl") if kind == "eval" else (RUN, "ttrl/samples.jsonl")
    ref = root / f"{kind}-ref"
    code, wall = finish([*args, "--out", str(ref)], root)
    assert code == 0, f"the uninterrupted {kind} failed"
    expected_rows = Counter(sample_rows(ref / samples))
    expected = run_results(ref) if kind == "run" else (ref / samples).read_bytes()
    survived = identical = killed = lost = duplicated = 0
    for i in range(n):
        out = root / f"{kind}-{i}"
        if kill_after([*args, "--out", str(out)], root, rng.uniform(0.0, wall)):
            killed += 1
        code, _ = finish([*args, "--out", str(out)], root)
        if code != 0:
            continue
        survived += 1
        got = Counter(sample_rows(out / samples))
        lost += sum((expected_rows - got).values())
        duplicated += sum((got - expected_rows).values())
        same = run_results(out) == expected if kind == "run" else (out / samples).read_bytes() == expected
        identical += same
        shutil.rmtree(out)
    return [f"SIGKILL of `{kind}` at a random moment, then resumed", f"{n} ({killed} killed mid-run)",
            f"{survived}/{n}", lost, duplicated, f"{identical}/{n}", f"{wall:.0f} s"]


def bad_inputs(root: Path) -> tuple[list, list[str]]:
    m = root / "bad-model"
    shutil.copytree(REPO / "ttrl_bench" / "demo" / "model", m)
    (root / "afile").write_text("x")
    base = ["eval", "--limit", "2", "-n", "2"]
    cases: list[tuple[str, list[str], object]] = []

    def model_case(name, damage):
        cases.append((name, [*base, "--model", str(m), "--out", "OUT"], damage))

    def damage_config():
        (m / "config.json").write_text("{not json")

    def truncate():
        w = m / "model.safetensors"
        w.write_bytes(w.read_bytes()[:1000])

    def drop(*names):
        return lambda: [(m / n).unlink() for n in names]

    def custom():
        cfg = json.loads((m / "config.json").read_text())
        (m / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "x.Y"}}))

    model_case("corrupt config.json", damage_config)
    model_case("truncated safetensors", truncate)
    model_case("missing weights", drop("model.safetensors"))
    model_case("missing tokenizer", drop("tokenizer.json", "tokenizer_config.json"))
    model_case("custom code without --trust-remote-code", custom)
    plain = [
        ("--out is a file", [*base, "--out", "afile"]),
        ("--out unwritable", [*base, "--out", "/proc/ttrl-bench/x"]),
        ("--leaderboard unwritable", [*base, "--out", "OUT", "--leaderboard", "/proc/ttrl-bench/lb"]),
        ("--no-leaderboard with --leaderboard", [*base, "--out", "OUT", "--no-leaderboard", "--leaderboard", "lb"]),
        ("leaderboard -o below a file", ["leaderboard", str(REPO / "leaderboards"), "-o", "afile/t.md"]),
        ("leaderboard --plot below a file", ["leaderboard", str(REPO / "leaderboards"), "--plot", "afile/p.png"]),
        ("--lr-scheduler bogus", ["run", "--limit", "2", "--out", "OUT", "--lr-scheduler", "bogus"]),
        ("--report-to bogus", ["run", "--limit", "2", "--out", "OUT", "--report-to", "bogus"]),
        ("missing --accelerate-config", ["run", "--limit", "2", "--out", "OUT", "--accelerate-config", "nope.yaml"]),
        ("--steps 0", ["run", "--limit", "2", "--out", "OUT", "--steps", "0"]),
        ("--top-k -1", [*base, "--out", "OUT", "--top-k", "-1"]),
        ("--temperature nan", [*base, "--out", "OUT", "--temperature", "nan"]),
        ("--batch-size 0", [*base, "--out", "OUT", "--batch-size", "0"]),
        ("--seed abc", [*base, "--seed", "abc"]),
        ("--backend foo", [*base, "--backend", "foo"]),
        ("check: unwritable GITHUB_STEP_SUMMARY", ["check", "--baseline", str(REPO / "leaderboards"), "--run",
                                                   str(REPO / "leaderboards"), "GSS=afile/summary.md"]),
    ]
    cases += [(name, argv, None) for name, argv in plain]
    ok, failures = 0, []
    original = {p.name: p.read_bytes() for p in m.iterdir()}
    for name, argv, damage in cases:
        for fname, data in original.items():
            (m / fname).write_bytes(data)
        if damage:
            damage()
        work = root / "bad-work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / "afile").write_text("x")
        extra = {}
        argv = [a.replace("OUT", str(work / "out")) for a in argv]
        if argv[-1].startswith("GSS="):
            extra["GITHUB_STEP_SUMMARY"] = str(work / argv.pop()[4:])
        proc = subprocess.run([sys.executable, "-m", "ttrl_bench.cli", *argv], cwd=work, env={**env(), **extra},
                              capture_output=True, text=True)
        left = sorted(p.name for p in work.iterdir())
        good = (proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1
                and proc.stderr.startswith("ttrl-bench: error: ") and left == ["afile"])
        ok += good
        if not good:
            failures.append(f"{name}: exit {proc.returncode}, {len(proc.stderr.splitlines())} stderr lines, left {left}")
    return [f"bad inputs ({len(cases)} kinds)", len(cases), "—", "—", "—", "—", f"{ok}/{len(cases)} one line + exit 2"], failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval-kills", type=int, default=20)
    ap.add_argument("--run-kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-bad-inputs", action="store_true", help="only the kills")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp dir)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows = []
    if args.eval_kills:
        rows.append(kill_trials("eval", args.eval_kills, rng, root))
    if args.run_kills:
        rows.append(kill_trials("run", args.run_kills, rng, root))
    failures: list[str] = []
    if not args.no_bad_inputs:
        row, failures = bad_inputs(root)
        rows.append(row)
    print(tabulate(rows, ["fault", "trials", "resumed, exit 0", "samples lost", "samples duplicated",
                          "identical to uninterrupted", "uninterrupted wall time / result"], tablefmt="github"))
    for f in failures:
        print("FAILED:", f)
    print(f"\n{time.monotonic() - started:.0f} s in all; seed {args.seed}; work dir {root}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
