"""Helpers for ``rlds-hub`` subcommands, shared by the CLI and by the packages that add
subcommands to it (``rlds_hub.beam.commands``, ``rlds_hub.server.commands``,
``rlds_hub.learners.commands``): the house help style, a quiet TensorFlow import, warnings
shown as one-line messages."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

_MAX_WARNINGS = 5


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with C++ start-up chatter (oneDNN, CUDA probing) kept off stderr.

    TF 2.21 logs those lines before it reads TF_CPP_MIN_LOG_LEVEL. Set RLDS_HUB_DEBUG=1 to
    see them. Commands call this only when they need TensorFlow.
    """
    if os.environ.get("RLDS_HUB_DEBUG") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.constant(0).numpy()  # device setup logs (e.g. a failed cuInit) go here too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


@contextlib.contextmanager
def warnings_through(write: Any) -> Iterator[list[str]]:
    """Shows warnings as ``warning: ...`` lines through ``write`` (e.g. ``tqdm.write``),
    the first few in full, then only counted; yields the list of messages."""
    seen: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):
        seen.append(str(message))
        if len(seen) <= _MAX_WARNINGS:
            write(f"warning: {message}")
        elif len(seen) == _MAX_WARNINGS + 1:
            write("warning: (more warnings are counted, not shown)")

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield seen


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults in --help (where there is one worth saying: not for required options,
    flags, or options without a default) and keeps descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if (
            action.required
            or default is None
            or default is False
            or (default is argparse.SUPPRESS or "default" in (action.help or ""))
        ):
            return action.help
        return super()._get_help_string(action)


def subparser(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand parser with rlds-hub's help style (for :data:`rlds_hub.cli.COMMAND_MODULES`)."""
    return commands.add_parser(name, formatter_class=Formatter, **kwargs)
