"""The optional parts of rlds_hub (pip extras) and the error that names the one to install.

``pip install rlds-hub`` is the core: the format, the reader, the NumPy loaders, the
recorder, ``info`` / ``stats`` / ``validate``. What needs more lives behind an extra
(``pip install 'rlds-hub[tf]'``) and imports it lazily; a missing one is reported as a
:class:`MissingExtraError` that says which extra brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Top-level import name -> the extra that installs it (pyproject.toml's optional dependencies).
EXTRAS: dict[str, str] = {
    "tensorflow": "tf",
    "tensorflow_datasets": "tf",
    "mlcroissant": "tf",
    "apache_beam": "beam",
    "cloudpickle": "beam",
    "dask": "beam",
    "distributed": "beam",
    "h5py": "beam",
    "pyarrow": "beam",
    "matplotlib": "plots",
    "dm_control": "envs",
    "mujoco": "envs",
    "gymnasium": "envs",
    # the learners' (the CLI's only JAX user); the JAX loaders name the lighter `jax` extra
    "jax": "learners",
    "jaxlib": "learners",
    "flax": "learners",
    "optax": "learners",
    "orbax": "learners",
    "fastapi": "server",
    "fastapi_offline": "server",
    "starlette": "server",
    "anyio": "server",
    "uvicorn": "server",
    "h11": "server",
    "sqlalchemy": "server",
    "alembic": "server",
    "psycopg": "server",
    "httpx": "server",
    "pydantic": "server",
    "pydantic_settings": "server",
    "torch": "torch",
    "av": "lerobot",
    "minari": "peers",
    # datasets in object storage (rlds_hub.storage.remote)
    "s3fs": "remote",
    "aiobotocore": "remote",
    "gcsfs": "remote",
    "aiohttp": "remote",
}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str, purpose: str | None = None):
        needs = f"{purpose} needs" if purpose else "this needs"
        super().__init__(
            f"{needs} {module!r}, which is not installed (it is not part of the core "
            f"install): pip install 'rlds-hub[{extra}]'",
            name=module,
        )
        self.extra = extra


def extra_for(error: ImportError) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an import error of an optional dependency, or None
    (a module of rlds_hub itself, or one no extra provides, is a real bug)."""
    if isinstance(error, MissingExtraError):
        return error
    name = getattr(error, "name", None)
    if not isinstance(error, ModuleNotFoundError) or not name:
        return None
    top = name.split(".", 1)[0]
    extra = EXTRAS.get(top)
    return MissingExtraError(top, extra) if extra else None


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Imports ``module``, or raises :class:`MissingExtraError` naming ``extra`` when it (or
    another optional dependency it imports) is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".", 1)[0]
        itself = missing == module.split(".", 1)[0] and missing != "rlds_hub"
        if not (itself or missing in EXTRAS):
            raise  # an rlds_hub module or a core dependency is missing: a real bug
        raise MissingExtraError(missing, extra, purpose) from error
