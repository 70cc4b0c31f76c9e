"""``python -m builders NAME`` prints the folder of a builder, for
``tfds build "$(python -m builders minari_dataset)"``; without NAME it lists them."""

from __future__ import annotations

import sys

from builders import NAMES, builder_dir


def main(argv: list[str]) -> int:
    if not argv:
        for name in NAMES:
            print(f"{name}\t{builder_dir(name)}")
        return 0
    try:
        print(builder_dir(argv[0]))
    except ValueError as e:
        print(f"python -m builders: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
