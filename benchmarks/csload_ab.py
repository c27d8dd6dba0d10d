"""`csload` with the A/B switches of `CSLOAD_BENCH_AB` applied (benchmarks/ab_patches.py).

    CSLOAD_BENCH_AB=no-gc-freeze python benchmarks/csload_ab.py sync --db F --json

As lean as the installed `csload` script (which imports csload.cli and calls main), so that the
A arm (`CSLOAD_BENCH_AB=none`) and the B arm start the same way.
"""

import os
import sys

from ab_patches import ENV, apply

apply(os.environ.get(ENV))

from csload.cli import main  # noqa: E402  (after the switches: they may patch its module)

sys.exit(main(prog_name="csload"))
