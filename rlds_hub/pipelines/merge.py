"""`python -m rlds_hub.pipelines.merge`: see `rlds_hub.beam.jobs.merge` (options: --help)."""

import sys

from rlds_hub.pipelines import main

if __name__ == "__main__":
    sys.exit(main("merge"))
