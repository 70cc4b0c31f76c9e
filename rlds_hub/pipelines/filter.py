"""`python -m rlds_hub.pipelines.filter`: see `rlds_hub.beam.jobs.filter` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("filter"))
