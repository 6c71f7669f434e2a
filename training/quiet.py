"""Quiet TensorFlow's start-up log for the command line (``--verbose`` shows it again).

TensorFlow's C++ runtime prints to stderr before its own log level applies — ``cuInit`` errors on CPU-only
machines, oneDNN and CPU-instruction notices, "Could not find cuda drivers" — and its Python logger warns about
slow callbacks and retracing. :func:`quiet_startup` imports TensorFlow (through ``mmoe_tf``, so ``tf.keras`` is
Keras 2) and lists the devices with stderr captured, then restores stderr: later errors still show. If the import
itself fails, the captured text is replayed so nothing is lost. It also sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless
set): oneDNN logs "supports DT_INT32 only on platforms with AVX-512" at ERROR level when the first training step's
graph is rewritten, long after start-up; an actual failure still raises a Python exception with its message.

Worker processes (``compare --jobs N``) start through :func:`quiet_worker`, which quiets their own TensorFlow import
the same way; ``--verbose`` (``quiet_startup(enabled=False)``) sets ``MMOE_TF_STARTUP_LOG=show``, which workers and
``python -m training.experiments`` honour.

Example:
    >>> with quiet_startup(enabled=True):  # doctest: +SKIP
    ...     from training.cli import main
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

SHOW_ENV = "MMOE_TF_STARTUP_LOG"


@contextlib.contextmanager
def quiet_startup(enabled: bool = True) -> Iterator[None]:
    """Import TensorFlow with stderr (file descriptor 2) captured; a no-op when not ``enabled``.

    Args:
        enabled: False (``--verbose``) leaves TensorFlow's start-up log alone.
    """
    if not enabled:
        os.environ[SHOW_ENV] = "show"  # worker processes show theirs too
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow starts)

            tf.config.list_physical_devices()  # the cuInit probe; logical devices can still be configured
            tf.get_logger().setLevel(logging.ERROR)  # slow-callback and retracing warnings
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
    yield


def startup_log_shown() -> bool:
    """Whether the user asked for TensorFlow's start-up log (``--verbose``, or ``MMOE_TF_STARTUP_LOG=show``)."""
    return os.environ.get(SHOW_ENV) == "show"


def quiet_worker(initializer: str, *args: object) -> None:
    """Process-pool initializer: import TensorFlow with its start-up log hidden, then run ``initializer``.

    Pass this function (it lives in a module that does not import TensorFlow) as the pool's ``initializer``, so
    that nothing imports TensorFlow in the worker before its stderr is captured.

    Args:
        initializer: ``"module:function"`` to call next (imported after TensorFlow).
        *args: Its arguments.
    """
    with quiet_startup(enabled=not startup_log_shown()):
        pass
    module, name = initializer.split(":")
    getattr(importlib.import_module(module), name)(*args)
