"""`python -m pipelines.merge` from the repository root: `rlds_hub.pipelines.merge`."""

import sys

from pipelines import main

if __name__ == "__main__":
    sys.exit(main("merge"))
