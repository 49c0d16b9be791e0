"""Logging, configured once per entry point, and quiet third-party output by default.

Every module logs through ``logging.getLogger(__name__)``; an entry point (a CLI,
the service, a benchmark) calls :func:`configure` once. Without ``verbose`` the
libraries underneath stay quiet: Feast's ibis backend, pathspec and Keras
deprecation warnings, and TensorFlow's C++ log (absl lines, "Could not find cuda
drivers"), so a command's own result is what the user sees. With ``verbose``
nothing is hidden: debug logs, Python warnings (through the log format) and
TensorFlow's native lines.

TensorFlow's shared libraries log "Could not find cuda drivers" through absl
*before* absl's log is initialised; such lines go straight to file descriptor 2
and ignore ``TF_CPP_MIN_LOG_LEVEL`` (an absl limitation). They can only be
filtered at the descriptor, so the first ``import tensorflow`` runs with fd 2
piped through :class:`_NativeStderrFilter`, which drops exactly those lines and
passes everything else through as it comes.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import os
import re
import select
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
#: Loggers of libraries that chat at INFO; kept at WARNING unless verbose.
NOISY = ("feast", "bentoml", "absl", "tensorflow", "h5py", "urllib3", "matplotlib", "numexpr")
#: Native lines TensorFlow prints on import whatever the log level, dropped unless verbose:
#: absl's notice that it is not initialised, and INFO/WARNING lines in glog format
#: (``I0000 00:00:1796114888.589554   15882 cudart_stub.cc:31] Could not find cuda ...``).
NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\] .*)\r?$"
)
#: Top-level modules whose first import loads TensorFlow's shared libraries.
NATIVE_IMPORTS = ("tensorflow",)

_configured = False
_quiet = False  # quiet_third_party ran (and no --verbose since)


def configure(verbose: bool = False, level: int | None = None) -> None:
    """Set the one log format on stderr; quiet third-party noise unless ``verbose``.

    Idempotent: a second call only changes the level (``python -m stage`` and the
    ``candlecast`` script may both reach it).
    """
    global _configured
    chosen = level if level is not None else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not _configured:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
        _configured = True
    root.setLevel(chosen)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if verbose:
        show_third_party()
    else:
        quiet_third_party()


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is written.

    A stream bound once would keep writing to a replaced (and closed) stderr:
    test runners swap it per invocation of a CLI.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def quiet_third_party() -> None:
    """Hide library chatter that says nothing about the user's command.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` when it is first imported, so this
    must run before anything imports it (the CLIs import TF lazily); the lines it
    prints before reading it are filtered by :func:`_install_native_filter`.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # no GPU probing on a CPU machine
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("TQDM_DISABLE", "1")  # Feast's materialize progress bars
    _quiet_warnings()
    _quiet_absl()
    _install_native_filter()


def _quiet_warnings() -> None:
    global _quiet
    _quiet = True
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for module in ("keras", "pathspec", "ibis", "feast", "google", "tensorflow", "absl"):
        warnings.filterwarnings("ignore", module=module)


def after_import() -> None:
    """Re-apply the quiet warning filters after importing a library that sets its own.

    Feast calls ``warnings.simplefilter`` when imported, which puts its filters in
    front of ours; ``candlecast.feast_store`` calls this right after importing it.
    """
    if _quiet:
        _quiet_warnings()


def show_third_party() -> None:
    """``--verbose``: every warning once per place, in the log format; TF's import unfiltered."""
    global _quiet
    _quiet = False
    warnings.simplefilter("default")
    logging.captureWarnings(True)
    _remove_native_filter()


def _quiet_absl() -> None:
    """absl's Python logger (TF, Keras) at ERROR, if absl is already loaded."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.ERROR)


class _NativeStderrFilter:
    """While active, fd 2 goes through a pipe; lines matching ``NATIVE_NOISE`` are dropped.

    A reader thread forwards every other byte to the real stderr as it arrives
    (progress bars keep moving; a crash inside the block loses at most what was
    still in the pipe). Partial lines wait briefly for their end in case they are noise.
    """

    def __init__(self) -> None:
        self._saved = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _NativeStderrFilter:
        try:
            sys.stderr.flush()
            read_end, write_end = os.pipe()
            self._saved = os.dup(2)
            os.dup2(write_end, 2)
            os.close(write_end)
        except (OSError, AttributeError, ValueError):  # no usable fd 2: nothing to filter
            self._saved = -1
            return self
        self._thread = threading.Thread(
            target=_forward, args=(read_end, self._saved), name="native-stderr", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved < 0:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees EOF
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = -1


def _forward(read_end: int, target: int) -> None:
    """Copy ``read_end`` to ``target`` until EOF, dropping whole lines of native noise."""
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            if not ready:  # quiet for a moment: a partial line is not noise, pass it on
                if pending and not _maybe_noise(pending):
                    _write_all(target, pending)
                    pending = b""
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line))
            if pending and not _maybe_noise(pending):
                kept, pending = kept + pending, b""
            if kept:
                _write_all(target, kept)
        if pending and not NATIVE_NOISE.match(pending):
            _write_all(target, pending)
    finally:
        os.close(read_end)


def _maybe_noise(partial: bytes) -> bool:
    """Whether an unfinished line could still become a ``NATIVE_NOISE`` line."""
    return partial.startswith((b"W", b"I"))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except OSError:
            return


class _NativeImportFinder:
    """A one-shot ``sys.meta_path`` entry: the first import of ``NATIVE_IMPORTS`` is filtered.

    It finds the module as the path finder would and only wraps the loader's
    ``exec_module``, so the module, its spec and its submodules are the usual ones.
    """

    def find_spec(self, name: str, path: object = None, target: object = None):
        if name not in NATIVE_IMPORTS:
            return None
        _remove_native_filter()  # once: later imports are cached, and the libraries loaded
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        loader.exec_module = _filtered(loader.exec_module)
        return spec


def _filtered(exec_module: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    def run(module: ModuleType) -> None:
        with _NativeStderrFilter():
            exec_module(module)
        _quiet_absl()  # TF's import loaded absl.logging

    return run


def _install_native_filter() -> None:
    """Filter TensorFlow's import-time native lines, unless TF is already imported."""
    if any(name in sys.modules for name in NATIVE_IMPORTS):
        return
    if not any(isinstance(f, _NativeImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _NativeImportFinder())


def _remove_native_filter() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _NativeImportFinder)]
