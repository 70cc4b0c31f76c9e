"""The batch jobs: each module has a Python function (``convert(...)``, ``reshard(...)``,
...), ``add_arguments(parser)`` for its command-line options and ``main(args)``; the
``rlds-hub`` subcommands and ``python -m pipelines.<job>`` call them."""

JOBS = ("convert", "reshard", "filter", "map", "merge", "split", "stats", "export")
