"""`python -m pipelines.split` from the repository root: `rlds_hub.pipelines.split`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("split"))
