"""`python -m pipelines.map` from the repository root: `rlds_hub.pipelines.map`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("map"))
