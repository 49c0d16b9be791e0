"""Logging, configured once per entry point, and quiet third-party output by default.

Every module logs through ``logging.getLogger(__name__)``; an entry point (a CLI,
the service, a benchmark) calls :func:`configure` once. Without ``verbose`` the
libraries underneath stay quiet: Feast's ibis backend, pathspec and Keras
deprecation warnings, and TensorFlow's C++ log (absl lines, "Could not find cuda
drivers"), so a command's own result is what the user sees.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
#: Loggers of libraries that chat at INFO; kept at WARNING unless verbose.
NOISY = ("feast", "bentoml", "absl", "tensorflow", "h5py", "urllib3", "matplotlib", "numexpr")

_configured = False


def configure(verbose: bool = False, level: int | None = None) -> None:
    """Set the one log format on stderr; quiet third-party noise unless ``verbose``.

    Idempotent: a second call only changes the level (``python -m stage`` and the
    ``candlecast`` script may both reach it).
    """
    global _configured
    chosen = level if level is not None else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
        _configured = True
    root.setLevel(chosen)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        quiet_third_party()


def quiet_third_party() -> None:
    """Hide library chatter that says nothing about the user's command.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` when it is first imported, so this
    must run before anything imports it (the CLIs import TF lazily).
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # no GPU probing on a CPU machine
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for module in ("keras", "pathspec", "ibis", "feast", "google", "tensorflow"):
        warnings.filterwarnings("ignore", module=module)
