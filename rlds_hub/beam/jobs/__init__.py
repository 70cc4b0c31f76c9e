"""The batch jobs: each module has a Python function (``convert(...)``, ``reshard(...)``,
...) that takes its input, an :class:`~rlds_hub.beam.job_values.Output` and a
:class:`~rlds_hub.beam.job_values.Run`, and ``main(args, flags)``, which runs it from parsed
command-line arguments and Beam pipeline flags; the options are declared in
:mod:`rlds_hub.beam.arguments`, and the ``rlds-hub`` subcommands
(:mod:`rlds_hub.beam.commands`) and ``python -m rlds_hub.pipelines.<job>`` call ``main``."""

JOBS = ("convert", "reshard", "filter", "map", "merge", "split", "stats", "export")
