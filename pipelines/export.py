"""`python -m pipelines.export` from the repository root: `rlds_hub.pipelines.export`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("export"))
