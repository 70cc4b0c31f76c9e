"""`python -m pipelines.export`: see `rlds_hub.beam.jobs.export` (options: --help)."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("export"))
