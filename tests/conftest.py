"""Shared pytest configuration. Fixtures shared by one folder's tests are in that folder's
``conftest.py``; the fake environments and the ``record`` helper are in ``rlds_hub.testing``."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing")
