"""ttrl-bench: measure test-time reinforcement learning.

The library behind the ``ttrl-bench`` command, in a dozen names::

    from ttrl_bench import EvalConfig, RunConfig, evaluate, run

    result = evaluate(EvalConfig(task="synth_near", n=8, limit=20), out=None)  # in memory
    print(result.summary.scores["pass@1"])                                    # {"mean": .., "stderr": ..}

    runs = run(RunConfig(methods=("ttrl", "leakage")))                         # base -> TTRL -> leakage
    print(runs.table)

Importing the package loads no model library (torch, transformers, vLLM load when used).
"""
import os as _os
import sys as _sys

try:
    from ttrl_bench.adapt.methods import METHODS
    from ttrl_bench.grading import Grader, extract_answer
    from ttrl_bench.measure.metrics import majority_vote, pass_at_k
    from ttrl_bench.measure.records import Record, load_records
    from ttrl_bench.measure.summary import Summary
    from ttrl_bench.pipeline.config import EvalConfig
    from ttrl_bench.pipeline.run_config import AdaptOverrides, RunConfig
    from ttrl_bench.pipeline.evaluate import EvalResult, evaluate
    from ttrl_bench.pipeline.run import RunResult, run
    from ttrl_bench.report.gate import CheckResult, check
    from ttrl_bench.report.leaderboard import build_table as leaderboard
    from ttrl_bench.report.table import Table
    from ttrl_bench.types import Completion, Question, QuestionGrade, SamplingParams
except KeyboardInterrupt:
    # Ctrl-C while the ttrl-bench command is still starting (`ttrl-bench ...` or `python -m ttrl_bench.cli`,
    # whose argv[0] is "-m" while its packages import): nothing ran, so nothing to save and no traceback.
    # A library user importing the package gets the KeyboardInterrupt as usual.
    if _sys.argv[:1] == ["-m"] or _os.path.basename(_sys.argv[0] if _sys.argv else "") == "ttrl-bench":
        _sys.stderr.write("\nttrl-bench: interrupted\n")
        _os._exit(130)
    raise

__version__ = "0.2.0"

__all__ = [
    "AdaptOverrides", "CheckResult", "Completion", "EvalConfig", "EvalResult", "Grader", "METHODS", "Question",
    "QuestionGrade", "Record", "RunConfig", "RunResult", "SamplingParams", "Summary", "Table", "__version__",
    "check", "evaluate", "extract_answer", "leaderboard", "load_records", "majority_vote", "pass_at_k", "run",
]
