"""`python -m pipelines.filter` from the repository root: `rlds_hub.pipelines.filter`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("filter"))
