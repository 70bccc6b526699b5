"""The ``ttrl-bench`` command."""
from ttrl_bench.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
