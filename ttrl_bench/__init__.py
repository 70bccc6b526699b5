"""ttrl-bench: measure test-time reinforcement learning.

The public API is small on purpose::

    from ttrl_bench import EvalConfig, run_eval
    run_dir, measurement, record = run_eval(EvalConfig(task="synth_near"))

Everything else is reached through the ``ttrl-bench`` command.
"""
__version__ = "0.1.0"

__all__ = ["EvalConfig", "run_eval", "__version__"]


def __getattr__(name):  # lazy: importing the package must not import torch
    if name in ("EvalConfig", "run_eval"):
        from ttrl_bench.pipeline import evaluate

        return getattr(evaluate, name)
    raise AttributeError(name)
