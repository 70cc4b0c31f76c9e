"""`python -m pipelines.map`: see `rlds_hub.beam.jobs.map` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("map"))
