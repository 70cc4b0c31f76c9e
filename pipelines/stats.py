"""`python -m pipelines.stats`: see `rlds_hub.beam.jobs.stats` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("stats"))
