"""`python -m pipelines.reshard` from the repository root: `rlds_hub.pipelines.reshard`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("reshard"))
