"""TFDS dataset builders, built with ``tfds build builders/<name>`` (see docs/pipelines.md)."""
