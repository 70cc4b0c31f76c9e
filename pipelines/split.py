"""`python -m pipelines.split`: see `rlds_hub.beam.jobs.split` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("split"))
