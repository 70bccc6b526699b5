"""The embedded default: a tiny causal LM this repository trains itself (``python -m ttrl_bench.demo.train``)."""
from pathlib import Path

EMBEDDED_MODEL = Path(__file__).resolve().parent / "model"
EMBEDDED_NAME = "ttrl-bench/tiny-adder"
