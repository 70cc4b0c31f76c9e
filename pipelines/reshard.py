"""`python -m pipelines.reshard`: see `rlds_hub.beam.jobs.reshard` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("reshard"))
