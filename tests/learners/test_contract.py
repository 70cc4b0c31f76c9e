"""The agent contract (issue 17, item 4): one registry of :class:`Algorithm` records, agents
that satisfy the :class:`Agent` protocol and never import the runner, one owner of the run
directory's paths, one recorded online loop keeping the seed protocol."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlds_hub.learners import seeds
from rlds_hub.learners.algorithm import ALGORITHMS, Agent, get_algorithm

PACKAGE = Path(__file__).resolve().parents[2] / "rlds_hub"
LEARNERS = PACKAGE / "learners"
PENDULUM = "gym/Pendulum-v1"  # 200-step episodes, a scripted expert
RUNNER = {"rlds_hub.learners.run", "rlds_hub.learners.policy", "rlds_hub.learners.commands"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _learners_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(LEARNERS.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The learners modules ``path`` imports: statements anywhere (functions included) and
    strings naming a module (lazy-export tables)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # from package import module, or a name of a module
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value.partition(":")[0])
    return found & known


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_agents_never_import_the_runner():
    modules = _learners_modules()
    graph = {name: _imports(path, set(modules)) for name, path in modules.items()}
    agents = [m for m in modules if m.split(".")[2:3] in (["bc"], ["ail"], ["poir"])]
    agents += ["rlds_hub.learners.online", "rlds_hub.learners.run_setup"]
    assert len(agents) > 15
    for agent in agents:
        reached = _reachable(agent, graph) & RUNNER
        assert not reached, f"{agent} imports the runner ({sorted(reached)}), directly or not"
    # The runner finds the agents through the registry, not by a module name in a string.
    for runner in ("rlds_hub.learners.run", "rlds_hub.learners.policy"):
        source = modules[runner].read_text()
        assert "importlib" not in source and "import_module" not in source
        assert not any(
            m.startswith(f"rlds_hub.learners.{a}") for m in graph[runner] for a in ALGORITHMS
        )


def test_the_layering_check_sees_an_agent_importing_the_runner(tmp_path, monkeypatch):
    # The check above is not vacuous: an agent module that imports run.py (inside a
    # function, as a loop through importlib once did) is found.
    copy = tmp_path / "rlds_hub" / "learners"
    copy.mkdir(parents=True)
    (copy / "run.py").write_text("")
    (copy / "agent.py").write_text("def f():\n    from rlds_hub.learners.run import EXPERIENCE\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rlds_hub")
    monkeypatch.setattr(sys.modules[__name__], "LEARNERS", copy)
    modules = _learners_modules()
    graph = {name: _imports(path, set(modules)) for name, path in modules.items()}
    assert "rlds_hub.learners.run" in _reachable("rlds_hub.learners.agent", graph)


def _protocol_members() -> dict[str, object]:
    members = {
        name: value
        for name, value in vars(Agent).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }
    assert len(members) == 14, sorted(members)
    return members


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_agent_class_has_the_protocols_members(name):
    from rlds_hub.learners.config import RunConfig

    algorithm = get_algorithm(name)
    assert algorithm.name == name and issubclass(algorithm.config, RunConfig)
    agent = algorithm.make_agent
    assert inspect.isclass(agent), "make_agent is the agent class"
    for member, declared in _protocol_members().items():
        assert hasattr(agent, member), f"{agent.__name__} has no {member}"
        if isinstance(declared, property):
            assert not callable(getattr(agent, member)), f"{agent.__name__}.{member}"
            continue
        expected = list(inspect.signature(declared).parameters)
        assert list(inspect.signature(getattr(agent, member)).parameters) == expected, member
    for function, like in (
        (algorithm.make_policy, "make_policy"),
        (algorithm.policy_params_template, "policy_params_template"),
    ):
        assert function.__module__ == f"rlds_hub.learners.{name}.builder", like


def test_an_unknown_algorithm_is_refused_with_the_choices():
    from rlds_hub.learners.errors import LearnerError

    with pytest.raises(LearnerError, match=r"unknown algorithm 'dqn'; choose from \['ail', 'bc'"):
        get_algorithm("dqn")


def _name_tables(path: Path, names: set[str]) -> list[int]:
    """Lines of literal collections (or dicts' keys) naming two or more algorithms."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict):
            items = node.keys
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = node.elts
        else:
            continue
        named = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
        if len(named) >= 2:
            lines.append(node.lineno)
    return lines


def test_the_registry_is_the_only_place_the_names_live():
    names = set(ALGORITHMS)
    assert names == {"bc", "ail", "poir"}
    tables = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _name_tables(path, names))
    }
    assert tables == {"learners/algorithm.py": [tables["learners/algorithm.py"][0]]}
    # `rlds-hub train`'s choices and `rlds_hub.learners.ALGORITHMS` are the registry's.
    from rlds_hub import learners
    from rlds_hub.cli import build_parser

    assert learners.ALGORITHMS is ALGORITHMS
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    (positional,) = [a for a in train._actions if a.dest == "algorithm"]
    assert tuple(positional.choices) == tuple(ALGORITHMS)


def test_the_names_check_sees_a_second_table(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text('CHOICES = ("bc", "ail", "poir")\nONE = ["bc"]\n')
    assert _name_tables(planted, set(ALGORITHMS)) == [1]


RUN_FILES = ("run.json", "metrics.jsonl", "learning_curve.png", "checkpoints", "evaluation")


def test_only_the_run_directory_module_names_its_files():
    found = []
    for path in sorted(LEARNERS.rglob("*.py")):
        if path.name == "run_dir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in (*RUN_FILES, "experience"):
                found.append(f"{path.relative_to(LEARNERS)}:{node.lineno} {node.value!r}")
    assert found == []


def test_train_help_and_load_policy_stay_free_of_jax_and_tensorflow():
    code = (
        "import sys\n"
        "from rlds_hub.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "from rlds_hub.learners import ALGORITHMS, load_policy\n"
        "from rlds_hub.learners.algorithm import get_algorithm\n"
        "from rlds_hub.learners.run_setup import Setup\n"
        "print(sorted(m for m in ('jax', 'flax', 'tensorflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# -- the online loop and its seeds -----------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from rlds_hub.learners.run import prepare
    from rlds_hub.learners.testing import record_episodes

    root = tmp_path_factory.mktemp("contract")
    demos = record_episodes(root / "demos", PENDULUM, episodes=1, seed=3)
    return prepare("ail", dataset=demos, env=PENDULUM, out=root / "run", seed=2)


def test_training_seed_keeps_the_seed_protocol(setup):
    from rlds_hub.learners.online import training_seed

    fresh = training_seed(setup, 0)
    assert fresh == seeds.online_seed(2, 0, avoid=[3]) and fresh in seeds.ONLINE
    assert training_seed(setup, 4_000) == seeds.online_seed(2, 4_000, avoid=[3]) != fresh
    assert training_seed(setup, 0, requested=3) == 3  # asked for: a fresh run only
    assert training_seed(setup, 4_000, requested=3) == seeds.online_seed(2, 4_000, avoid=[3])
    with pytest.raises(seeds.SeedOverlapError, match=r"the AIL run in .*trained on"):
        training_seed(setup, 0, requested=setup.eval_seed, what="the AIL run")


def test_the_online_loop_records_whole_episodes_with_the_learners_count(setup, tmp_path):
    import dataclasses

    from rlds_hub.learners.online import OnlineLoop
    from rlds_hub.storage import open_dataset
    from rlds_hub.storage.episodes import episode_table

    setup = dataclasses.replace(setup, run_dir=str(tmp_path / "run"))
    count = 0
    loop = OnlineLoop(
        setup,
        seed=seeds.online_seed(2, 0),
        policy_name="test",
        progress=lambda: count,
        shift={"action_noise": 0.5},
        metadata={"shift": {"action_noise": 0.5}},
    )
    given, transitions = [], []
    for i in range(450):  # two whole episodes of 200 steps, and 50 steps of a third
        action = np.array([np.sin(i / 7.0)], np.float32)
        previous = loop.observation
        transitions.append(loop.step(action))
        given.append(action)
        count += 1
        assert np.array_equal(transitions[-1].observation, previous)
        assert loop.at_episode_start == transitions[-1].ended
        current = setup.task.flatten_observation(loop.timestep.observation, batched=False)
        np.testing.assert_array_equal(loop.observation, current)
    loop.close()
    assert [i for i, t in enumerate(transitions) if t.ended] == [199, 399]
    assert not any(t.terminal for t in transitions)  # Pendulum is truncated, never terminal
    assert len(loop.returns) == 2 and loop.episodes == 2
    for t, following in itertools.pairwise(transitions[:200]):
        np.testing.assert_array_equal(t.next_observation, following.observation)
    dataset = open_dataset(setup.files.experience)
    rows = episode_table(dataset, "train")
    assert [r["metadata"]["env_steps"] for r in rows] == [200, 400]
    (session,) = dataset.metadata["sessions"]
    assert session["seed"] == seeds.online_seed(2, 0)
    assert sum(r["return"] for r in rows) == pytest.approx(sum(loop.returns), rel=1e-5)
    # The recorder stores the actions the environment executed (the noisy ones).
    from rlds_hub.learners import inputs

    executed = inputs.load_transitions(
        dataset, setup.task, "train", episodes=[0], fields=(inputs.ACTION,), check=False
    )[inputs.ACTION]
    intended = setup.task.normalize_actions(np.stack(given[:200]))
    assert executed.shape == intended.shape
    assert 0.05 < np.abs(executed - intended).mean() < 1.0


# bc keeps the protocol in make test-fast; ail and poir (6-7 s each) run in make test.
@pytest.mark.parametrize(
    "name",
    [name if name == "bc" else pytest.param(name, marks=pytest.mark.slow) for name in ALGORITHMS],
)
def test_every_registered_agent_satisfies_the_protocol(name, setup, tmp_path):
    import dataclasses

    from rlds_hub.learners.run import prepare

    algorithm = get_algorithm(name)
    config = {"eval_episodes": 0}
    if name == "poir":
        config |= {"ensemble_size": 2, "num_samples": 10, "online_steps": 10}
    prepared = prepare(
        name,
        dataset=setup.dataset,
        env=PENDULUM,
        out=tmp_path / name,
        seed=2,
        config=config,
    )
    agent = algorithm.make_agent(dataclasses.replace(prepared))
    try:
        assert isinstance(agent, Agent)
        assert agent.progress == 0 and agent.total >= 1
        assert set(agent.counters()) >= {"updates"} or set(agent.counters()) >= {"env_steps"}
        assert agent.can_checkpoint()
    finally:
        agent.close()
    assert json.dumps(agent.counters())


# -- unchanged for users: run.json, load_policy, --resume --------------------------------------

RUN_JSON_KEYS = {
    "algorithm",
    "config",
    "task",
    "normalizer",
    "dataset",
    "split",
    "env",
    "seed",
    "eval_seed",
    "references",
    "rlds_hub_version",
}


def test_run_json_keeps_its_keys_and_an_unknown_algorithm_is_named(setup, tmp_path):
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.errors import LearnerError
    from rlds_hub.learners.run import run_record
    from rlds_hub.learners.run_dir import RunDirectory

    record = run_record(setup)
    assert set(record) == RUN_JSON_KEYS and record["algorithm"] == "ail"
    files = RunDirectory(str(tmp_path / "old"))
    files.write_run({**record, "algorithm": "dqn"})
    assert files.read_run()["algorithm"] == "dqn"
    with pytest.raises(LearnerError, match="unknown algorithm 'dqn'; choose from"):
        load_policy(files.path)


@pytest.mark.slow
def test_train_load_policy_and_resume_through_the_registry(setup, tmp_path, capsys):
    from rlds_hub.cli import main
    from rlds_hub.envs import make_env
    from rlds_hub.learners import load_policy
    from rlds_hub.learners.run_dir import RunDirectory

    out = tmp_path / "run"
    config = tmp_path / "bc.json"
    config.write_text(json.dumps({"eval_episodes": 0, "log_every": 10, "steps_per_call": 10}))
    args = ["train", "bc", "--dataset", setup.dataset.path, "--env", PENDULUM, "--out", str(out)]
    args += ["--config", str(config), "--quiet"]
    assert main([*args, "--steps", "20"]) == 0
    files = RunDirectory(str(out))
    assert files.read_run()["algorithm"] == "bc" and files.holds_run()
    env = make_env(PENDULUM, seed=5)
    action = load_policy(out, env=env)(env.reset())
    assert action.shape == (1,) and np.all(np.abs(action) <= 2.0)
    assert main([*args, "--steps", "30", "--resume"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"resumed": str(out), "step": 20} in lines
    assert [r["step"] for r in lines if r.get("kind") == "train"] == [10, 20, 30]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_each_agent_package_exports_its_public_names_cheaply(name):
    import importlib

    package = importlib.import_module(f"rlds_hub.learners.{name}")
    algorithm = get_algorithm(name)
    exported = {getattr(package, n) for n in package.__all__}
    assert {
        algorithm.config,
        algorithm.make_agent,
        algorithm.make_policy,
        algorithm.policy_params_template,
    } <= exported
    assert any(n.endswith("Learner") for n in package.__all__)
    for exported_name, module in package._EXPORTS.items():
        assert getattr(package, exported_name) is getattr(
            importlib.import_module(module), exported_name
        )
    code = f"import sys, rlds_hub.learners.{name} as p; print('jax' in sys.modules, len(p.__all__))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", str(len(package.__all__))], result.stderr[-2000:]
