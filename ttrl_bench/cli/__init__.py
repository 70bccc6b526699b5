"""The ``ttrl-bench`` command."""
import os
import signal
import sys


def _interrupted_while_starting(signum, frame):  # nothing has run yet: nothing to save, no traceback
    sys.stderr.write("\nttrl-bench: interrupted\n")
    os._exit(130)


try:  # only the main thread may set handlers; an import from elsewhere keeps Python's default
    _previous = signal.signal(signal.SIGINT, _interrupted_while_starting)
except ValueError:
    _previous = None
try:
    from ttrl_bench.cli.main import build_parser, main
finally:
    if _previous is not None:
        signal.signal(signal.SIGINT, _previous)  # main() turns Ctrl-C into exit 130 from here on

__all__ = ["build_parser", "main"]
