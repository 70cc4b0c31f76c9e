"""`python -m rlds_hub.pipelines.stats`: see `rlds_hub.beam.jobs.stats` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("stats"))
