"""`python -m rlds_hub.pipelines.map`: see `rlds_hub.beam.jobs.map` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("map"))
