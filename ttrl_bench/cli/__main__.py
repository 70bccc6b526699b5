import sys

try:
    from ttrl_bench.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command is still starting: nothing to save, no traceback
    sys.stderr.write("\nttrl-bench: interrupted\n")
    sys.exit(130)

sys.exit(main())
