"""A job's options: a misspelt option is an error naming the closest one (not a flag Beam
silently drops), and Beam's own options reach Beam, on ``python -m pipelines.<job>`` and on
``rlds-hub <job>`` alike."""

from __future__ import annotations

import pytest

from rlds_hub.beam.arguments import job_parser
from rlds_hub.beam.options import beam_flags
from rlds_hub.testing.beam_jobs import FAST, record_nested


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("options") / "source"
    record_nested(path, episodes=2, lengths=(3, 4))
    return path


def test_a_misspelt_option_to_a_pipeline_module_is_an_error_with_a_suggestion(
    source, tmp_path, capsys
):
    from pipelines import main

    with pytest.raises(SystemExit) as exited:
        main(
            "filter",
            ["--input", str(source), "--output", str(tmp_path / "out"), "--min-retrun=859", *FAST],
        )
    assert exited.value.code == 2
    assert "--min-retrun=859 (did you mean --min-return?)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_misspelt_option_to_rlds_hub_is_an_error_with_a_suggestion(source, tmp_path, capsys):
    from rlds_hub.cli import main

    with pytest.raises(SystemExit) as exited:
        main(
            [
                "filter",
                "--input",
                str(source),
                "--output",
                str(tmp_path / "out"),
                "--min-retrun",
                "859",
            ]
        )
    assert exited.value.code == 2
    assert "did you mean --min-return?" in capsys.readouterr().err


def test_a_misspelt_beam_option_is_an_error(source, tmp_path, capsys):
    from rlds_hub.cli import main

    code = main(
        [
            "filter",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--beam-option=--projet=my-project",
            *FAST,
        ]
    )
    assert code == 2 and not (tmp_path / "out").exists()
    assert (
        "--projet=my-project: not a Beam pipeline option (did you mean --project?)"
        in capsys.readouterr().err
    )


def test_an_abbreviated_option_is_not_taken_for_another(capsys):
    with pytest.raises(SystemExit):
        job_parser("filter").parse_args(["--input", "a", "--output", "b", "--min-ret=3"])
    assert "did you mean --min-return?" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", [[], ["filter"]])
def test_beams_own_options_are_passed_to_beam(prefix):
    arguments = [
        "--input",
        "a",
        "--output",
        "b",
        "--project=my-project",
        "--temp_location",
        "/tmp/t",
        "--min-return=3",
    ]
    if prefix:
        from rlds_hub.cli import build_parser

        args = build_parser().parse_args(prefix + arguments)
    else:
        args = job_parser("filter").parse_args(arguments)
    assert args.min_return == 3
    flags = beam_flags(args)
    assert "--project=my-project" in flags
    assert flags[flags.index("--temp_location") + 1] == "/tmp/t"
