"""`python -m rlds_hub.pipelines.export`: see `rlds_hub.beam.jobs.export` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("export"))
