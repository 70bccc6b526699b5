"""Fault suite, part 5: every bad input is one line on stderr and exit 2, found before any run
directory is created or model loaded, and nothing is left behind that would refuse the corrected
command; earlier results are untouched.

Most cases call ``main()`` in this process (capfd sees what libraries write to the file
descriptors too); argparse errors and Ctrl-C run the real command in a subprocess.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from ttrl_bench.cli import main

PREFIX = "ttrl-bench: error: "


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None for p in sorted(directory.rglob("*"))}


def one_line(capfd, code: int, *named: str) -> str:
    out, err = capfd.readouterr()
    assert code == 2, (code, err[-2000:])
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[-3000:]}"
    assert lines[0].startswith(PREFIX) and "Traceback" not in err, lines[0]
    for text in named:
        assert text in lines[0], f"{text!r} not in: {lines[0]}"
    assert out == "", out
    return lines[0]


@pytest.fixture
def model(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny model, to damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def eval_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", str(model), "--limit", "2", "-n", "2", "--out", str(out), *extra]


def run_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--limit", "2", "-n", "2", "--samples", "2", "--prompts-per-step", "1",
            "--steps", "1", "--methods", "ttrl", "--out", str(out), *extra]


def damage_config(m: Path) -> None:
    (m / "config.json").write_text("{not json")


def truncate_weights(m: Path) -> None:
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def drop_weights(m: Path) -> None:
    (m / "model.safetensors").unlink()


def drop_tokenizer(m: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (m / name).unlink()


def custom_code(m: Path) -> None:
    config = json.loads((m / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_mine.MyModel"}
    (m / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage, named", [
    (damage_config, ("config.json", "not valid JSON")),
    (truncate_weights, ("model.safetensors", "truncated")),
    (drop_weights, ("no weights",)),
    (drop_tokenizer, ("no tokenizer",)),
    (custom_code, ("--trust-remote-code",)),
])
def test_broken_model_directories_and_the_corrected_rerun(model, work, capfd, damage, named, tiny_model_dir):
    out = work / "run"
    damage(model)
    one_line(capfd, main(eval_argv(model, out)), "--model", *named)
    assert not out.exists()  # nothing that would refuse the corrected command
    shutil.rmtree(model)
    shutil.copytree(tiny_model_dir, model)  # corrected
    assert main(eval_argv(model, out)) == 0


@pytest.mark.parametrize("extra, named", [
    (("--top-k", "-1"), ("--top-k",)), (("--temperature", "nan"), ("--temperature",)),
    (("--batch-size", "0"), ("--batch-size",)), (("--top-p", "inf"), ("--top-p",)),
    (("--no-leaderboard", "--leaderboard", "LB"), ("--no-leaderboard",)),
])
def test_bad_sampling_values_before_any_model_load(model, work, capfd, monkeypatch, extra, named):
    import ttrl_bench.sampling as sampling

    monkeypatch.setattr(sampling, "make_sampler", lambda *a, **k: pytest.fail("the model was loaded"))
    one_line(capfd, main(eval_argv(model, work / "run", *[str(work / e) if e == "LB" else e for e in extra])), *named)
    assert list(work.iterdir()) == []


def test_out_and_leaderboard_places_checked_up_front(model, work, capfd):
    (work / "afile").write_text("x")
    before = snapshot(work)
    one_line(capfd, main(eval_argv(model, work / "afile")), "--out", "is a file")
    one_line(capfd, main(eval_argv(model, work / "afile" / "run")), "--out", "is a file")
    one_line(capfd, main(eval_argv(model, Path("/proc/ttrl-bench-test/run"))), "--out", "not writable")
    one_line(capfd, main(eval_argv(model, work / "run", "--leaderboard", "/proc/ttrl-bench-test/lb")),
             "--leaderboard", "not writable")
    one_line(capfd, main(eval_argv(model, work / "run", "--leaderboard", str(work / "afile"))), "--leaderboard")
    assert snapshot(work) == before


@pytest.mark.parametrize("extra, named", [
    (("--lr-scheduler", "bogus"), ("--lr-scheduler", "'bogus'")),
    (("--report-to", "bogus"), ("--report-to", "'bogus'")),
    (("--accelerate-config", "/nonexistent/accel.yaml"), ("--accelerate-config",)),
    (("--steps", "0"), ("--steps",)),
    (("--save-every", "0"), ("--save-every",)),
])
def test_bad_adaptation_flags_before_the_base_measurement(model, work, capfd, extra, named):
    argv = run_argv(model, work / "run", *extra)
    if "--steps" in extra:
        argv = [a for i, a in enumerate(argv) if not (a == "--steps" and argv[i + 1] == "1")
                and not (a == "1" and argv[i - 1] == "--steps")] 
    one_line(capfd, main(argv), *named)
    assert list(work.iterdir()) == []


def test_leaderboard_outputs_below_a_file(work, capfd, tmp_path):
    from ttrl_bench.measure.records import QuestionScore, Record, write_record

    write_record(Record(model="m", model_fingerprint="f", task="t", data_fingerprint="d", method="base",
                        metrics={"pass@1": {"mean": 0.5, "stderr": 0.1}},
                        per_question=[QuestionScore("q", 2, 1, True)], sampling={"n": 2}), work / "lb")
    (work / "afile").write_text("x")
    before = snapshot(work)
    one_line(capfd, main(["leaderboard", str(work / "lb"), "-o", str(work / "afile" / "t.md")]), "-o/--output")
    one_line(capfd, main(["leaderboard", str(work / "lb"), "--plot", str(work / "afile" / "p.png")]), "--plot")
    assert snapshot(work) == before


def test_check_with_an_unwritable_step_summary_is_2_not_1(work, capfd, monkeypatch):
    from ttrl_bench.measure.records import QuestionScore, Record, write_record

    base = Record(model="m", model_fingerprint="f", task="t", data_fingerprint="d", method="base",
                  metrics={"pass@1": {"mean": 1.0, "stderr": 0.0}},
                  per_question=[QuestionScore(f"q{i}", 4, 4, True) for i in range(30)], sampling={"n": 4})
    worse = Record(**{**base.__dict__, "per_question": [QuestionScore(f"q{i}", 4, 0, False) for i in range(30)]})
    b, r = write_record(base, work / "base"), write_record(worse, work / "run")
    assert main(["check", "--baseline", str(b), "--run", str(r)]) == 1  # a real regression is 1 ...
    capfd.readouterr()
    (work / "afile").write_text("x")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(work / "afile" / "summary.md"))
    one_line(capfd, main(["check", "--baseline", str(b), "--run", str(r)]), "GITHUB_STEP_SUMMARY")  # ... this is 2


def test_check_refuses_different_sampling_unless_allowed(work, capfd):
    from ttrl_bench.measure.records import QuestionScore, Record, write_record

    qs = [QuestionScore(f"q{i}", 4, 2, True) for i in range(30)]
    base = Record(model="m", model_fingerprint="f", task="t", data_fingerprint="d", method="base",
                  metrics={"pass@1": {"mean": 0.5, "stderr": 0.1}}, per_question=qs,
                  sampling={"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_new_tokens": 8, "seed": 0})
    greedy = Record(**{**base.__dict__, "sampling": {**base.sampling, "temperature": 0.0, "seed": 1}})
    other_seed = Record(**{**base.__dict__, "sampling": {**base.sampling, "seed": 1}})
    b, g, s = write_record(base, work / "b"), write_record(greedy, work / "g"), write_record(other_seed, work / "s")
    one_line(capfd, main(["check", "--baseline", str(b), "--run", str(g)]), "temperature", "--allow-different-sampling")
    assert main(["check", "--baseline", str(b), "--run", str(g), "--allow-different-sampling"]) == 0
    assert main(["check", "--baseline", str(b), "--run", str(s)]) == 0  # another seed is another draw, not other settings


@pytest.mark.parametrize("argv, named", [(["eval", "--seed", "abc"], "--seed"), (["eval", "--backend", "foo"], "--backend"),
                                          (["bogus"], "bogus")])
def test_argparse_errors_are_one_line(tmp_path, argv, named):
    proc = subprocess.run([sys.executable, "-m", "ttrl_bench.cli", *argv], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(PREFIX) and named in proc.stderr, proc.stderr


def test_ctrl_c_while_starting_is_no_traceback(tiny_model_dir, tmp_path):
    """Ctrl-C 0.2 s into the command (importing torch, reading the task). An interrupt inside the
    interpreter's own start-up (site and .pth files, before any line of ours runs) cannot be handled
    by any program; on a loaded machine 0.2 s can land there, so the delay is counted from the time
    a bare `python -c pass` takes right now, and a landing in site is retried."""
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup = time.monotonic() - started
        proc = subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *eval_argv(tiny_model_dir, tmp_path / "run")],
                                cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(startup + 0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if "<frozen site>" not in err:
            break
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    assert not (tmp_path / "run").exists()  # nothing was sampled yet: no directory to refuse a rerun
