"""Small gaps of issue 15, item 25: every learner's config and learner class is exported from
``rlds_hub.learners``; ``rlds-hub --version`` prints the installed version."""

import importlib.metadata

import pytest

import rlds_hub
from rlds_hub import learners
from rlds_hub.cli import main


@pytest.mark.parametrize(
    "name", ["BCConfig", "BCLearner", "AILConfig", "AILLearner", "POIRConfig", "POIRLearner"]
)
def test_every_learners_config_and_class_is_exported(name):
    assert name in learners.__all__
    exported = getattr(learners, name)
    assert exported.__name__ == name
    algorithm = name.removesuffix("Config").removesuffix("Learner").lower()
    assert exported.__module__.startswith(f"rlds_hub.learners.{algorithm}.")


def test_exported_configs_are_the_ones_train_uses():
    from rlds_hub.learners import AILConfig, POIRConfig
    from rlds_hub.learners.algorithm import get_algorithm

    assert get_algorithm("ail").config is AILConfig and get_algorithm("poir").config is POIRConfig
    POIRConfig(online_steps=0, ensemble_size=2, num_samples=10).validate()


def test_version_flag_prints_the_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"rlds-hub {rlds_hub.__version__}")
    assert rlds_hub.__version__ == importlib.metadata.version("rlds_hub")


@pytest.mark.parametrize("job", ["filter", "reshard"])
def test_pipelines_modules_print_the_version_too(job, capsys):
    from pipelines import main as pipeline_main

    with pytest.raises(SystemExit) as exited:
        pipeline_main(job, ["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"rlds-hub {rlds_hub.__version__}"
