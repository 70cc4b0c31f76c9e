"""Environment names → ``dm_env.Environment``s: ``make_env`` and ``list_envs``.

Names are ``dm_control/<domain>-<task>`` (the dm_control suite) and ``gym/<gymnasium id>``
(any registered Gymnasium env, adapted by ``GymnasiumEnv``). A bare Gymnasium id such as
``Pendulum-v1`` is accepted as ``gym/Pendulum-v1``. dm_control and Gymnasium are imported
only when a name from their family is used.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import warnings
import weakref

import dm_env

from rlds_hub.extras import EXTRAS

__all__ = [
    "DM_CONTROL_PREFIX",
    "GYM_PREFIX",
    "EnvUnavailableError",
    "canonical_env_name",
    "env_label",
    "list_envs",
    "make_env",
]

DM_CONTROL_PREFIX = "dm_control/"
GYM_PREFIX = "gym/"

# Gymnasium entry-point packages and the modules each needs beyond Gymnasium itself
# (gymnasium's own extras). Functional JAX envs (phys2d/, tabular/) return JAX arrays: not
# listed. Third-party entry points need their own top-level package.
_GYM_PACKAGE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "gymnasium.envs.classic_control": (),
    "gymnasium.envs.toy_text": (),
    "gymnasium.envs.mujoco": ("mujoco", "imageio"),
    "gymnasium.envs.box2d": ("Box2D",),
}
_GYM_EXCLUDED_PACKAGES = ("gymnasium.envs.phys2d", "gymnasium.envs.tabular")
# Gymnasium's extras, for the install hint of a missing dependency.
_GYM_EXTRAS = {"gymnasium.envs.mujoco": "mujoco", "gymnasium.envs.box2d": "box2d"}
# pip's names of the modules the env families import, where they differ.
_PIP_NAMES = {"Box2D": "box2d"}
# The names make_env gave the envs it made (for messages about them).
_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class EnvUnavailableError(ValueError):
    """An environment that exists but cannot be created here (a dependency is missing)."""


def canonical_env_name(name: str) -> str:
    """Returns the canonical ``dm_control/...`` or ``gym/...`` form of ``name``.

    Cheap: checks the syntax (and Gymnasium's registry for bare ids), not that the task exists.

    Raises:
      ValueError: if ``name`` has no recognised prefix and is not a registered Gymnasium id.
    """
    if name.startswith(DM_CONTROL_PREFIX):
        if "-" not in name[len(DM_CONTROL_PREFIX) :]:
            raise ValueError(
                f"dm_control env names look like 'dm_control/<domain>-<task>', got {name!r}."
                f"{_suggestions(name)}"
            )
        return name
    if name.startswith(GYM_PREFIX):
        return name
    try:
        import gymnasium
    except ImportError:
        pass
    else:
        if name in gymnasium.registry:
            return GYM_PREFIX + name
    raise ValueError(f"unknown environment {name!r}.{_suggestions(name)}")


def make_env(name: str, *, seed: int | None = None) -> dm_env.Environment:
    """Creates the environment ``name`` as a ``dm_env.Environment``.

    Args:
      name: ``dm_control/<domain>-<task>``, ``gym/<gymnasium id>`` or a bare Gymnasium id.
      seed: dm_control: the task's ``random`` seed; Gymnasium: the seed of the first reset.
        ``None`` draws fresh entropy.

    Raises:
      ValueError: for unknown names, listing close matches.
    """
    canonical = canonical_env_name(name)
    if canonical.startswith(DM_CONTROL_PREFIX):
        _headless_mujoco_default()
        try:
            from dm_control import suite
        except ImportError as e:
            raise _unavailable(canonical, e, None) from None

        domain, task = canonical[len(DM_CONTROL_PREFIX) :].split("-", 1)
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"unknown dm_control task {name!r}.{_suggestions(name)}")
        env = suite.load(domain, task, task_kwargs={"random": seed})
    else:
        env = _make_gym(canonical, name, seed)
    _NAMES[env] = canonical
    return env


def _make_gym(canonical: str, name: str, seed: int | None) -> dm_env.Environment:
    try:
        import gymnasium
    except ImportError as e:
        raise _unavailable(canonical, e, None) from None

    from rlds_hub.envs.gymnasium_env import GymnasiumEnv

    gym_id = canonical[len(GYM_PREFIX) :]
    if ":" not in gym_id and gym_id not in gymnasium.registry:  # "module:Id" imports first
        raise ValueError(f"unknown Gymnasium env {name!r}.{_suggestions(name)}")
    try:
        gym_env = gymnasium.make(gym_id)
    except (ImportError, gymnasium.error.DependencyNotInstalled) as e:
        entry_point = getattr(gymnasium.registry.get(gym_id), "entry_point", None)
        package = (
            entry_point.split(":", 1)[0].rsplit(".", 1)[0] if isinstance(entry_point, str) else ""
        )
        raise _unavailable(canonical, e, _GYM_EXTRAS.get(package)) from None
    return GymnasiumEnv(gym_env, seed=seed)


def _unavailable(name: str, error: Exception, extra: str | None) -> EnvUnavailableError:
    """The error for an env whose dependency is missing, with what to install."""
    module = getattr(error, "name", None)
    family = f' (or all of its family\'s: pip install "gymnasium[{extra}]")' if extra else ""
    if isinstance(error, ImportError) and module:
        top = module.split(".", 1)[0]
        package = (
            f"'rlds-hub[{EXTRAS[top]}]'" if EXTRAS.get(top) == "envs" else _PIP_NAMES.get(top, top)
        )
        return EnvUnavailableError(
            f"{name} needs the Python package {top!r}, which is not installed here: pip "
            f"install {package}{family}"
        )
    return EnvUnavailableError(f"{name} cannot be created here: {error}")


def env_label(env: dm_env.Environment) -> str:
    """What ``env`` is, for messages: the name ``make_env`` made it from, else its own
    ``repr`` where it defines one (``GymnasiumEnv(Pendulum-v1)``), else its class."""
    try:
        name = _NAMES.get(env)
    except TypeError:  # not weakly referenceable
        name = None
    if name:
        return name
    return repr(env) if type(env).__repr__ is not object.__repr__ else type(env).__name__


def list_envs() -> list[str]:
    """All names ``make_env`` can build here: dm_control suite tasks and Gymnasium envs whose
    dependencies are installed. Families whose package is missing are left out."""
    return [*_dm_control_names(), *_gym_names()]


@functools.cache
def _headless_mujoco_default() -> None:
    """Without a display, importing dm_control makes GLFW warn that DISPLAY is missing; the
    state-based tasks never render, so that warning is noise. (Defaulting MUJOCO_GL to egl
    instead crashes the process at exit when TensorFlow is loaded too.)"""
    if not os.environ.get("DISPLAY"):
        warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")


def _dm_control_names() -> tuple[str, ...]:
    try:
        _headless_mujoco_default()
        from dm_control import suite
    except ImportError:
        return ()
    return tuple(f"{DM_CONTROL_PREFIX}{domain}-{task}" for domain, task in suite.ALL_TASKS)


def _gym_names() -> list[str]:
    try:
        import gymnasium
    except ImportError:
        return []
    names = []
    for env_id, env_spec in gymnasium.registry.items():
        entry_point = env_spec.entry_point
        if not isinstance(entry_point, str):  # e.g. stubs that raise "install mujoco-py"
            continue
        module = entry_point.split(":", 1)[0]
        if module.startswith(_GYM_EXCLUDED_PACKAGES):
            continue
        package = module.rsplit(".", 1)[0]
        requirements = _GYM_PACKAGE_REQUIREMENTS.get(package, (module.split(".", 1)[0],))
        if all(_importable(requirement) for requirement in requirements):
            names.append(GYM_PREFIX + env_id)
    return sorted(names)


@functools.cache
def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _suggestions(name: str) -> str:
    """A sentence with close matches to ``name`` and how to list every name."""
    names = list_envs()
    # Match on the full names and on the part after the prefix, so that both
    # "Pendulum-v0" and "dm_control/cartpol-swingup" find their neighbours.
    by_key: dict[str, str] = {}
    for full in names:
        by_key.setdefault(full, full)
        by_key.setdefault(full.split("/", 1)[1], full)
    close = difflib.get_close_matches(name, list(by_key), n=5, cutoff=0.6)
    stripped = name.split("/", 1)[1] if "/" in name else name
    close += difflib.get_close_matches(stripped, list(by_key), n=5, cutoff=0.6)
    matches = list(dict.fromkeys(by_key[key] for key in close))[:5]
    hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
    return f"{hint} List all names with rlds_hub.envs.list_envs()."
