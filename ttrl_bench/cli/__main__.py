import sys

from ttrl_bench.cli.main import main

sys.exit(main())
