"""TensorFlow's CPU thread pools, set the way a model of many small ops trains fastest.

An MMoE training step is hundreds of small ops (batch × a few hundred units). By default TensorFlow
splits every op over all cores (intra-op parallelism); for ops this small the split and the wake-ups
cost more than they save, so one thread per op, with independent ops run side by side (inter-op
parallelism), trains faster (docs/performance.md, Design decisions). The settings are process-wide
and must be made before TensorFlow runs its first op, so importing ``mmoe_tf`` does not make them;
``build_model`` and ``load_model`` do (:func:`adopt_default_cpu_threads`) when they are the first to run
TensorFlow and nothing has chosen its threads.

Example:
    >>> import mmoe_tf
    >>> mmoe_tf.configure_cpu_threads()  # doctest: +SKIP  (before any model is built)
"""

from __future__ import annotations

import os

import tensorflow as tf

DEFAULT_INTRA_OP_THREADS = 1
INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"
INTER_OP_ENV = "TF_NUM_INTEROP_THREADS"


def _count(name: str, value: int | None, env: str, default: int) -> int:
    if value is None:
        raw = os.environ.get(env)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{env}={raw!r}: expected a whole number of threads (0 = TensorFlow's default)") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number ≥ 0 (0 = TensorFlow's default), got {value!r}")
    return value


def configure_cpu_threads(intra_op_threads: int | None = None, inter_op_threads: int | None = None) -> tuple[int, int]:
    """Set TensorFlow's intra-op and inter-op thread counts for this process.

    Args:
        intra_op_threads: Threads one op may use. ``None``: ``$TF_NUM_INTRAOP_THREADS`` if set, else
            ``DEFAULT_INTRA_OP_THREADS`` (1). 0 leaves TensorFlow's default (all cores).
        inter_op_threads: Threads running independent ops. ``None``: ``$TF_NUM_INTEROP_THREADS`` if
            set, else 0 (TensorFlow's default: all cores).

    Returns:
        ``(intra_op_threads, inter_op_threads)`` as applied (0 = TensorFlow's default).

    Raises:
        ValueError: a count is negative or not a whole number.
        RuntimeError: TensorFlow has already started its runtime (an op or a model ran in this
            process), after which the thread pools cannot change.

    Example:
        >>> configure_cpu_threads(intra_op_threads=1)  # doctest: +SKIP
        (1, 0)
    """
    intra = _count("intra_op_threads", intra_op_threads, INTRA_OP_ENV, DEFAULT_INTRA_OP_THREADS)
    inter = _count("inter_op_threads", inter_op_threads, INTER_OP_ENV, 0)
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == (intra, inter):
        return intra, inter  # already so: also fine after start-up (TensorFlow refuses even a no-op 0 then)
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        raise RuntimeError(
            "configure_cpu_threads: TensorFlow's runtime has already started in this process, so its thread "
            f"pools are fixed; call it before building or running any model, or set {INTRA_OP_ENV} / "
            f"{INTER_OP_ENV} in the environment before starting Python"
        ) from None
    return intra, inter


def adopt_default_cpu_threads() -> tuple[int, int] | None:
    """Give TensorFlow one thread per op, as the CLI does, if nobody has chosen its threads yet.

    Applies ``configure_cpu_threads()``'s defaults (one thread per op, all cores for independent ops)
    only when ``$TF_NUM_INTRAOP_THREADS`` and ``$TF_NUM_INTEROP_THREADS`` are unset (TensorFlow honours
    them itself; ``0`` keeps its defaults), no count was set through ``tf.config.threading`` and
    TensorFlow's runtime has not started. Otherwise it changes nothing.

    Returns:
        ``(intra_op_threads, inter_op_threads)`` when it set them, else ``None``.

    Example:
        >>> adopt_default_cpu_threads()  # doctest: +SKIP  (in a fresh process)
        (1, 0)
    """
    threading = tf.config.threading
    chosen = threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads()
    if chosen or INTRA_OP_ENV in os.environ or INTER_OP_ENV in os.environ:
        return None
    try:
        return configure_cpu_threads(DEFAULT_INTRA_OP_THREADS, 0)
    except RuntimeError:  # TensorFlow has run an op in this process: its pools are fixed
        return None
