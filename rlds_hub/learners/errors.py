"""The learners' errors: user mistakes are ``ValueError`` subclasses (the CLI prints them)."""

from __future__ import annotations


class LearnerError(ValueError):
    """Input a learner cannot train on or act with, with what to change."""


class DataError(LearnerError):
    """A dataset or batch a learner cannot use (no episodes, NaNs, unsupported features)."""


class SpecMismatchError(LearnerError):
    """A dataset, checkpoint or environment whose specs do not match each other."""


class CheckpointError(LearnerError):
    """A checkpoint that is missing, unreadable, or from another configuration or task."""
