"""Command-line options of the jobs (shared by ``rlds-hub <job>`` and ``python -m
rlds_hub.pipelines.<job>``). Importing this module does not import Beam."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rlds_hub.beam.defaults import DEFAULT_MAX_BYTES_PER_SHARD, DEFAULT_MAX_EPISODES_PER_SHARD
from rlds_hub.beam.options import add_beam_arguments
from rlds_hub.beam.sources import SOURCE_FORMATS
from rlds_hub.format.features import IMAGE_ENCODINGS
from rlds_hub.storage.dataset_files import FILE_FORMATS

HELP = {
    "convert": "convert envlogger logs, Minari datasets or D4RL HDF5 files to RLDS",
    "reshard": "rewrite a dataset with other shard sizes or file format",
    "filter": "keep the episodes that pass a predicate, or a random fraction",
    "map": "apply an episode or step function to every episode",
    "merge": "merge datasets with the same features",
    "split": "deterministic train/validation/test splits by a hash of the episode id",
    "stats": "per-feature statistics with quantiles, stored with the dataset",
    "export": "export steps and episodes to Parquet tables or a LeRobot dataset",
}
DESCRIPTIONS = {
    "convert": "Convert a source (envlogger Riegeli log directories, a Minari dataset, a "
    "D4RL-style HDF5 file, or a LeRobot v3.0 dataset; detected, or named with "
    "--source-format) into an RLDS dataset, "
    "losslessly. Runs on Apache Beam (DirectRunner by default, --runner=DaskRunner for a "
    "dask.distributed cluster); the output is complete or absent.",
    "reshard": "Rewrite a dataset's shards (count, size, TFRecord <-> ArrayRecord), copying "
    "the records as they are.",
    "filter": "Keep the episodes that pass every condition given (length, return, "
    "termination, metadata, a module:function predicate on the episode's row, a seeded "
    "random fraction). Records are copied as they are.",
    "map": "Apply module:function to every episode (--episode-fn) or step (--step-fn); the "
    "output features are derived from what the function returns.",
    "merge": "Merge datasets with the same features (splits joined by name); on a mismatch, "
    "every difference is listed.",
    "split": "Assign every episode to a split by a hash of its id (metadata --id-key, "
    "default episode_id, else <split>/<index>) and the seed: reproducible on any runner.",
    "stats": "Per-feature mean/std/min/max and quantiles, episode length and return "
    "distributions, stored with the dataset (statistics.json).",
    "export": "Write steps/ and episodes/ Parquet tables (one row per step, with episode and "
    "step indices; one row per episode), or with --format lerobot a LeRobot v3.0 dataset "
    "(frames = steps; cameras as MP4 video or PNG in the Parquet).",
}


def _io(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument(
            "--input",
            action="append",
            required=True,
            help="input dataset directory (repeat for each input)",
        )
    else:
        parser.add_argument("--input", required=True, help="input dataset directory")
    parser.add_argument(
        "--output",
        required=True,
        help="output directory (must not hold a dataset unless --overwrite)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output if it already holds a dataset"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _split(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        default=None,
        help="input split(s) in TFDS syntax: train, 'train[:80%%]', "
        "train+test (default: every split)%(default).0s",
    )


def _shards(parser: argparse.ArgumentParser, *, file_format: str | None) -> None:
    group = parser.add_argument_group("output shards")
    group.add_argument(
        "--num-shards",
        type=int,
        default=None,
        help="exactly this many shards per split (default: by size)%(default).0s",
    )
    group.add_argument(
        "--max-episodes-per-shard",
        type=int,
        default=DEFAULT_MAX_EPISODES_PER_SHARD,
        help="start a new shard after this many episodes",
    )
    group.add_argument(
        "--max-bytes-per-shard",
        type=int,
        default=DEFAULT_MAX_BYTES_PER_SHARD,
        help="start a new shard before this many bytes",
    )
    group.add_argument(
        "--file-format",
        default=file_format,
        choices=list(FILE_FORMATS),
        help="shard format" + ("" if file_format else " (default: the input's)%(default).0s"),
    )
    group.add_argument(
        "--name",
        default=None,
        help="TFDS dataset name of the output (default: the input's)%(default).0s",
    )


def add_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        help="the source: a directory of envlogger logs, a Minari dataset "
        "directory, or a D4RL-style HDF5 file",
    )
    parser.add_argument("--output", required=True, help="output dataset directory")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output if it already holds a dataset"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--source-format",
        default=None,
        choices=list(SOURCE_FORMATS),
        help="the source's format (default: detected)%(default).0s",
    )
    parser.add_argument(
        "--output-split",
        default=None,
        help="put every episode into this split (default: the source's own splits, a LeRobot "
        "dataset's meta/info.json splits; else train)",
    )
    parser.add_argument(
        "--image-encoding",
        default="png",
        choices=list(IMAGE_ENCODINGS),
        help="how uint8 image observations are stored (both lossless)",
    )
    parser.add_argument(
        "--episodes-per-unit",
        type=int,
        default=None,
        help="episodes a worker converts at a time (default: per format)%(default).0s",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="the source's control rate in steps per second, stored as metadata.json's fps "
        "(for sources that do not record it, e.g. envlogger logs; exports to LeRobot use it)",
    )
    _shards(parser, file_format="tfrecord")


def add_reshard(parser: argparse.ArgumentParser) -> None:
    _io(parser)
    _split(parser)
    _shards(parser, file_format=None)


def add_filter(parser: argparse.ArgumentParser) -> None:
    _io(parser)
    _split(parser)
    group = parser.add_argument_group("conditions (all must hold)")
    group.add_argument("--min-length", type=int, default=None, help="at least this many RLDS steps")
    group.add_argument("--max-length", type=int, default=None, help="at most this many RLDS steps")
    group.add_argument("--min-return", type=float, default=None, help="return at least this")
    group.add_argument("--max-return", type=float, default=None, help="return at most this")
    ended = group.add_mutually_exclusive_group()
    ended.add_argument("--terminated", action="store_true", help="terminated episodes only")
    ended.add_argument("--truncated", action="store_true", help="truncated episodes only")
    group.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="episode metadata KEY equals VALUE (JSON or text; repeatable)",
    )
    group.add_argument(
        "--where",
        default=None,
        metavar="MODULE:FUNCTION",
        help="a predicate called with each episode's row (num_steps, return, "
        "terminated, metadata, episode)",
    )
    group.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="keep this fraction of the episodes, chosen by a hash of --seed and the episode",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of --fraction")
    _shards(parser, file_format=None)


def add_map(parser: argparse.ArgumentParser) -> None:
    _io(parser)
    _split(parser)
    functions = parser.add_mutually_exclusive_group(required=True)
    functions.add_argument(
        "--episode-fn",
        default=None,
        metavar="MODULE:FUNCTION",
        help="episode -> episode (module:function or file.py:function)",
    )
    functions.add_argument(
        "--step-fn",
        default=None,
        metavar="MODULE:FUNCTION",
        help="step -> step (module:function or file.py:function)",
    )
    parser.add_argument(
        "--image-encoding",
        default="png",
        choices=list(IMAGE_ENCODINGS),
        help="how uint8 images the function returns are stored",
    )
    _shards(parser, file_format=None)


def add_merge(parser: argparse.ArgumentParser) -> None:
    _io(parser, many=True)
    _split(parser)
    _shards(parser, file_format=None)


def add_split(parser: argparse.ArgumentParser) -> None:
    _io(parser)
    _split(parser)
    parser.add_argument(
        "--fractions",
        default="train=0.8,validation=0.1,test=0.1",
        help="output splits and their shares",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the hash")
    parser.add_argument(
        "--id-key",
        default=None,
        help="episode metadata field identifying an episode (default: "
        "episode_id if present, else <split>/<index>)%(default).0s",
    )
    _shards(parser, file_format=None)


def add_stats(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    if positional:
        parser.add_argument("path", nargs="?", default=None, help="dataset directory")
        parser.add_argument("--input", default=None, help="dataset directory (or the path)")
    else:
        parser.add_argument("--input", required=True, help="dataset directory")
        parser.set_defaults(path=None)
    _split(parser)
    parser.add_argument(
        "--key",
        action="append",
        default=None,
        help="only this feature, e.g. observation/position (implies --no-save)",
    )
    parser.add_argument(
        "--output", default=None, metavar="JSON", help="also write the statistics to this JSON file"
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not store statistics.json in the dataset"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_export(parser: argparse.ArgumentParser) -> None:
    _io(parser)
    _split(parser)
    parser.add_argument(
        "--format", choices=("parquet", "lerobot"), default="parquet", help="what to write"
    )
    lerobot = parser.add_argument_group("--format lerobot")
    lerobot.add_argument(
        "--video-codec",
        choices=("av1", "h264", "none"),
        default="av1",
        help="cameras as AV1 or H.264 video, or none: PNG frames in the Parquet (lossless)",
    )
    lerobot.add_argument(
        "--fps", type=int, default=None, help="frames per second (default: the metadata's fps)"
    )
    lerobot.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out step fields LeRobot cannot hold (listed in export.json); else refuse",
    )
    lerobot.add_argument(
        "--task", default=None, help="the frames' task without a language field (default: name)"
    )
    lerobot.add_argument("--robot-type", default=None, help="info.json's robot_type")


ADDERS = {
    "convert": add_convert,
    "reshard": add_reshard,
    "filter": add_filter,
    "map": add_map,
    "merge": add_merge,
    "split": add_split,
    "stats": add_stats,
    "export": add_export,
}


def job_parser(
    job: str, parser: argparse.ArgumentParser | None = None, *, prog: str | None = None
) -> argparse.ArgumentParser:
    """The full parser of one job (its options and the Beam options), a new one named
    ``prog`` (default ``python -m rlds_hub.pipelines.<job>``) unless ``parser`` is given.
    Options it does not declare are Beam's (``--project``, ``--temp_location``, ...): they
    are kept in ``beam_passthrough`` when Beam knows them, and anything else is an error
    naming the closest option."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog=prog or f"python -m rlds_hub.pipelines.{job}",
            description=DESCRIPTIONS[job],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            allow_abbrev=False,
        )
        from rlds_hub._version import __version__

        parser.add_argument(
            "--version",
            action="version",
            version=f"rlds-hub {__version__}",
            help="print rlds_hub's version and exit",
        )
    parser.allow_abbrev = False  # --min-ret would otherwise be --min-return
    ADDERS[job](parser)
    add_beam_arguments(parser)
    parser.set_defaults(beam_passthrough=[])
    _strict(parser)
    return parser


def _strict(parser: argparse.ArgumentParser) -> None:
    """Makes ``parser`` keep the Beam options among the arguments it does not declare (in
    ``beam_passthrough``) and refuse anything else, with a suggestion."""
    parse = parser.parse_known_args

    def parse_known_args(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extra = parse(args, namespace)
        if extra:
            namespace.beam_passthrough = list(namespace.beam_passthrough) + beam_extra(
                parser, extra
            )
        return namespace, []

    parser.parse_known_args = parse_known_args  # also what a parent's subparser action calls


def beam_extra(parser: argparse.ArgumentParser, extra: list[str]) -> list[str]:
    """``extra`` if every option in it is Beam's; otherwise ``parser.error`` (exit 2) with
    the closest option of the job or of Beam."""
    from rlds_hub.beam.options import beam_option_strings, suggestion, unknown_beam_flags

    try:
        unknown = unknown_beam_flags(extra)
    except ValueError as e:  # a Beam option with a bad value
        parser.error(f"{' '.join(extra)}: {e}")
    if unknown:
        own = [o for action in parser._actions for o in action.option_strings]
        flag = unknown[0]
        hint = suggestion(flag, own) or suggestion(flag, beam_option_strings())
        parser.error(
            f"unrecognized option {flag}{hint}: neither an option of this job nor "
            "a Beam pipeline option (see --help)"
        )
    return extra
