"""`python -m pipelines.filter`: see `rlds_hub.beam.jobs.filter` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("filter"))
