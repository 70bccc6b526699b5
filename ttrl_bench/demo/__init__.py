"""The embedded default: a tiny causal LM this repository trains itself (``python -m ttrl_bench.demo.train``)."""
from pathlib import Path

EMBEDDED_MODEL = Path(__file__).resolve().parent / "model"
EMBEDDED_NAME = "ttrl-bench/tiny-adder"
# a second tiny model for the episodes task (synth_episodes): same architecture, trained on
# answers made of several attempts and a vote (python -m ttrl_bench.demo.train --recipe episodes)
EPISODES_MODEL = Path(__file__).resolve().parent / "model_episodes"
EPISODES_NAME = "ttrl-bench/tiny-episodes"
