"""`python -m pipelines.convert` from the repository root: `rlds_hub.pipelines.convert`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("convert"))
