"""`python -m pipelines.stats` from the repository root: `rlds_hub.pipelines.stats`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("stats"))
