"""`python -m rlds_hub.pipelines.split`: see `rlds_hub.beam.jobs.split` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("split"))
