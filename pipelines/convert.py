"""`python -m pipelines.convert`: see `rlds_hub.beam.jobs.convert` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("convert"))
