"""`python -m rlds_hub.pipelines.convert`: see `rlds_hub.beam.jobs.convert` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("convert"))
