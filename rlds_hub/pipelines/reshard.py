"""`python -m rlds_hub.pipelines.reshard`: see `rlds_hub.beam.jobs.reshard` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("reshard"))
