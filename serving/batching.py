"""Server-side batching of concurrent predict requests, modelled on TF Serving's batch scheduler, made adaptive.

Requests for the same servable and signature whose inputs share dtypes and per-example shapes are merged. A request
that finds the server idle (no batch running or waiting) runs at once, alone: a lone client pays no batch window.
Otherwise it joins the open batch of its key, which closes when it reaches ``max_batch_size`` examples,
``batch_timeout_micros`` after its first request (as in TF Serving), or as soon as one whole event-loop iteration
(ready callbacks, then a poll for I/O) has passed without a request joining it: the server has read every request
that had arrived, and waiting out the window would leave the loop idle while clients wait (32 closed-loop clients:
1.18× the requests/s, batches about as large, ``docs/serving.md``). A batch that has gone quiet while every
inference thread is busy stays open, taking requests, until a thread frees up (as TF Serving forms a batch only
when a thread is available): requests that reach the loop one per iteration, as gRPC calls do, share batches then
(gRPC at concurrency 32: 1.5 examples a batch instead of 1.1, 0.89× the server CPU per request,
``docs/serving_operations.md``). Starting waiting batches as soon as a thread frees up instead was measured: smaller
batches, 40 % more CPU per request and half the throughput under load.
Each batch is concatenated along axis 0 (one-example requests of Python scalars, :meth:`Batcher.submit_example`,
become one array per input there), run once in the thread pool, and its outputs are split back per request.
A request larger than ``max_batch_size`` is rejected (400) and a full queue answers UNAVAILABLE (503), as TF Serving
does.

Example:
    >>> batcher = Batcher(BatchingOptions(max_batch_size=64), executor, max_running=2)  # doctest: +SKIP
    >>> outputs = await batcher.run(key, servable_fn, inputs)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import RequestError, ServingError

Arrays = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Batching parameters (the fields of TF Serving's ``batching_parameters_file``).

    Args:
        max_batch_size: Most examples in one batch; larger requests are rejected with 400.
        batch_timeout_micros: How long the first request of a batch waits for others.
        max_enqueued_batches: Batches allowed to wait for a thread; beyond that requests get 503.
    """

    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100

    def __post_init__(self) -> None:
        for field in ("max_batch_size", "max_enqueued_batches"):
            if getattr(self, field) < 1:
                raise ValueError(f"BatchingOptions: field '{field}' must be >= 1, got {getattr(self, field)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"BatchingOptions: field 'batch_timeout_micros' must be >= 0, got {self.batch_timeout_micros}"
            )


def batch_size_of(inputs: Arrays) -> int | None:
    """The shared leading dimension of all inputs, or ``None`` when they differ (such requests are not batched)."""
    sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None


@dataclasses.dataclass
class _Pending:
    inputs: Arrays | dict[str, Any]  # arrays, or one example of Python scalars when ``columns`` is set
    size: int
    future: asyncio.Future
    columns: Callable[[list[dict[str, Any]]], dict[str, np.ndarray]] | None = None

    def arrays(self) -> Arrays:
        return self.inputs if self.columns is None else self.columns([self.inputs])


@dataclasses.dataclass
class _Open:
    """A batch accepting requests; ``fn`` computes its merged outputs."""

    fn: Callable[[Arrays], dict[str, np.ndarray]]
    items: list[_Pending] = dataclasses.field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None
    quiet: bool = False  # no request joined for a whole loop iteration; waits only for a free thread


class BatchSlice(dict):
    """One request's outputs ``{name: array}`` cut from a merged batch, with the batch's outputs at hand, so that work
    done once per batch (e.g. writing every row's answer) is shared by its requests.

    Attributes:
        batch: The merged batch's outputs.
        start: This request's first row in the batch.
        size: This request's number of rows.
    """

    __slots__ = ("_cache", "batch", "size", "start")

    def __init__(self, batch: dict[str, np.ndarray], start: int, size: int, cache: dict[str, Any]) -> None:
        super().__init__({n: a[start : start + size] for n, a in batch.items()})
        self.batch, self.start, self.size, self._cache = batch, start, size, cache

    def per_batch(self, name: str, compute: Callable[[dict[str, np.ndarray]], Any]) -> Any:
        """``compute(batch)``, computed by the first request of the batch that asks for ``name``, shared by the rest."""
        if name not in self._cache:
            self._cache[name] = compute(self.batch)
        return self._cache[name]


class Batcher:
    """Merges concurrent requests into batches; must be used from one event loop.

    Args:
        options: Batch size, timeout and queue limits.
        executor: Thread pool that runs each merged batch (keeps the event loop free).
        max_running: Batches the thread pool runs at once (its number of threads); batches closed beyond that wait
            in the pool's queue and count against ``max_enqueued_batches``.
    """

    def __init__(self, options: BatchingOptions, executor: Executor, max_running: int = 1) -> None:
        if max_running < 1:
            raise ValueError(f"Batcher: field 'max_running' must be >= 1, got {max_running}")
        self.options = options
        self.executor = executor
        self.max_running = max_running
        self._open: dict[Hashable, _Open] = {}  # insertion order = age: the oldest open batch starts first
        self._running = 0  # batches submitted to the executor and not finished
        self.batches_run = 0
        self.on_batch: Callable[[Hashable, int], None] | None = None  # (key, examples) of each batch started

    def queue_depth(self) -> int:
        """Batches waiting for a thread: open ones and closed ones queued behind the running ones (the number
        ``max_enqueued_batches`` bounds)."""
        return len(self._open) + max(0, self._running - self.max_running)

    def running(self) -> int:
        """Batches in the executor's threads."""
        return min(self._running, self.max_running)

    async def run(self, key: Hashable, fn: Callable[[Arrays], dict[str, np.ndarray]], inputs: Arrays) -> dict:
        """Run ``fn`` on ``inputs`` as part of a batch; returns this request's slice of the outputs.

        Args:
            key: Requests with equal keys may share a batch (e.g. servable, signature).
            fn: The function computing outputs for a merged batch (called in the executor).
            inputs: This request's inputs, all with the same leading (batch) dimension.

        Raises:
            RequestError: the request has more examples than ``max_batch_size``.
            ServingError: UNAVAILABLE (503) when the queue is full; errors raised by ``fn``.
        """
        return await self.submit(key, fn, inputs)

    def submit(
        self, key: Hashable, fn: Callable[[Arrays], dict[str, np.ndarray]], inputs: Arrays
    ) -> asyncio.Future[dict]:
        """:meth:`run` without a coroutine: queue ``inputs`` and return the future of this request's outputs.

        Must be called from the running event loop. Cancelling the future drops the request from its batch (a batch
        whose requests are all cancelled before it runs does not run).

        Raises:
            RequestError, ServingError: as :meth:`run`, at once (errors of ``fn`` arrive through the future).
        """
        size = batch_size_of(inputs)
        if size is None:
            raise RequestError("Batching needs every input to share the same leading (batch) dimension")
        if size > self.options.max_batch_size:
            raise RequestError(
                f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}"
            )
        item = _Pending(inputs, size, asyncio.get_running_loop().create_future())
        if not self._open and self._running == 0:  # nothing queued or running: no batch window
            self._start(_Open(fn, [item], size), key)
            return item.future
        return self._join((key, tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items()))), fn, item)

    def submit_example(
        self,
        key: Hashable,
        fn: Callable[[Arrays], dict[str, np.ndarray]],
        example: dict[str, Any],
        example_key: Hashable,
        columns: Callable[[list[dict[str, Any]]], dict[str, np.ndarray]],
    ) -> asyncio.Future[dict]:
        """:meth:`submit` for one example of Python scalars, turned into arrays with the rest of its batch.

        Args:
            key: As in :meth:`submit`.
            fn: As in :meth:`submit`.
            example: ``{input_name: value}``, e.g. from ``json_codec.ScalarInstanceReader.read``.
            example_key: ``tuple(sorted((name, dtype.str, ())))`` of the arrays ``columns`` makes, so that examples
                share batches with array requests of the same inputs.
            columns: Makes ``{input_name: [n] array}`` from a list of examples (in the inference thread).
        """
        item = _Pending(example, 1, asyncio.get_running_loop().create_future(), columns)
        if not self._open and self._running == 0:
            self._start(_Open(fn, [item], 1), key)
            return item.future
        return self._join((key, example_key), fn, item)

    def _join(self, full_key: Hashable, fn: Callable[[Arrays], dict], item: _Pending) -> asyncio.Future:
        """Add ``item`` to the open batch of ``full_key`` (opening one if needed); returns its future."""
        loop = item.future.get_loop()
        size = item.size
        batch = self._open.get(full_key)
        if batch is not None and batch.size + size > self.options.max_batch_size:
            self._close(full_key)
            batch = None
        if batch is None:
            if self.queue_depth() >= self.options.max_enqueued_batches:
                raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full")
            batch = self._open[full_key] = _Open(fn)
            delay = self.options.batch_timeout_micros / 1e6
            batch.timer = loop.call_later(delay, self._close, full_key)
            loop.call_soon(self._close_when_quiet, loop, full_key, batch, 0)
        batch.items.append(item)
        batch.size += size
        if batch.size >= self.options.max_batch_size:
            self._close(full_key)
        return item.future

    def _close_when_quiet(self, loop: asyncio.AbstractEventLoop, key: Hashable, batch: _Open, seen: int) -> None:
        """Close ``batch`` if no request joined it since the previous check (one loop iteration ago), else check again
        after the next iteration."""
        if self._open.get(key) is not batch:
            return
        joined = len(batch.items)
        if joined == seen:
            if self._running < self.max_running:
                self._close(key)
            else:  # every thread busy: keep taking requests; the next batch to finish starts it (``_finish``)
                batch.quiet = True
        else:
            loop.call_soon(self._close_when_quiet, loop, key, batch, joined)

    def _close(self, key: Hashable) -> None:
        """Stop ``key``'s open batch from taking requests and hand it to the executor."""
        batch = self._open.pop(key, None)
        if batch is not None:
            if batch.timer is not None:
                batch.timer.cancel()
            self._start(batch, key[0])

    def _start(self, batch: _Open, key: Hashable) -> None:
        self._running += 1
        if self.on_batch is not None:
            self.on_batch(key, batch.size)
        loop = batch.items[0].future.get_loop()
        done = self.executor.submit(self._compute, batch)
        # straight back to the loop (``run_in_executor``'s asyncio future would add one more loop iteration)
        done.add_done_callback(functools.partial(self._finish_threadsafe, loop, batch))

    def _finish_threadsafe(self, loop: asyncio.AbstractEventLoop, batch: _Open, done: Future) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._finish, batch, done)

    @staticmethod
    def _compute(batch: _Open) -> dict[str, np.ndarray]:
        # requests cancelled while the batch waited (client gone, deadline) are left out; nothing else touches the
        # closed batch until ``_finish``, which answers the requests that are left
        items = batch.items = [p for p in batch.items if not p.future.done()]
        batch.size = sum(p.size for p in items)
        if not items:
            return {}
        if len(items) == 1:
            return batch.fn(items[0].arrays())
        columns = items[0].columns
        if columns is not None and all(p.columns == columns for p in items):  # examples only: one array per input
            return batch.fn(columns([p.inputs for p in items]))
        parts = [p.arrays() for p in items]
        return batch.fn({n: np.concatenate([p[n] for p in parts]) for n in parts[0]})

    def _finish(self, batch: _Open, done: Future) -> None:
        self._running -= 1
        self.batches_run += 1
        if self._running < self.max_running:  # a thread is free: start the oldest batch that stopped growing
            for key, waiting in self._open.items():
                if waiting.quiet:
                    self._close(key)
                    break
        items = batch.items
        err = ServingError("UNAVAILABLE", "The server is shutting down") if done.cancelled() else done.exception()
        if err is None and len(items) > 1:
            outputs = done.result()
            bad = [n for n, a in outputs.items() if np.ndim(a) == 0 or np.shape(a)[0] != batch.size]
            if bad:
                err = ServingError("INTERNAL", f"Batched outputs {bad} do not have the batch dimension {batch.size}")
        start, cache = 0, {}
        for p in items:
            if not p.future.done():  # a request may have been cancelled (client gone, timeout)
                if err is not None:
                    p.future.set_exception(err)
                elif len(items) == 1:
                    p.future.set_result(done.result())
                else:
                    p.future.set_result(BatchSlice(done.result(), start, p.size, cache))
            start += p.size


_SUPPORTED = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
_IGNORED = (
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
)


def read_batching_parameters(path: str | Path) -> tuple[BatchingOptions, int | None, list[str]]:
    """Read TF Serving's ``--batching_parameters_file`` (a ``BatchingParameters`` text proto).

    Args:
        path: e.g. ``serving/tf_serving/batching_parameters.txt`` (``max_batch_size { value: 64 }`` lines).

    Returns:
        ``(options, num_batch_threads or None, ignored field names)``; fields this server does not implement
        (``allowed_batch_sizes``, ``pad_variable_length_inputs``, ...) are returned as ignored.

    Raises:
        ValueError: unreadable file, unknown field or a value that is not a non-negative integer (naming it), or
            text TF Serving's own ``BatchingParameters`` parser rejects (e.g. ``max_batch_size: 64`` without the
            ``{ value: }`` wrapper).

    Example:
        >>> options, threads, ignored = read_batching_parameters("batching_parameters.txt")  # doctest: +SKIP
    """
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"batching parameters file {path}: {err.strerror}") from None
    text = re.sub(r"#[^\n]*", "", text)
    fields = re.findall(r"(\w+)\s*(?:\{\s*value\s*:\s*(\"[^\"]*\"|[^\s}]+)\s*\}|:\s*(\"[^\"]*\"|\S+))", text)
    leftover = re.sub(r"(\w+)\s*(?:\{\s*value\s*:\s*(\"[^\"]*\"|[^\s}]+)\s*\}|:\s*(\"[^\"]*\"|\S+))", "", text)
    if leftover.strip():
        raise ValueError(f"batching parameters file {path}: cannot parse {leftover.strip()[:60]!r}")
    values: dict[str, int] = {}
    ignored = []
    for name, wrapped, plain in fields:
        raw = wrapped or plain
        if name in _IGNORED:
            ignored.append(name)
            continue
        if name not in _SUPPORTED:
            raise ValueError(f"batching parameters file {path}: unknown field '{name}'; known: {list(_SUPPORTED)}")
        if not raw.isdigit():
            raise ValueError(
                f"batching parameters file {path}: field '{name}' must be a non-negative integer, got {raw}"
            )
        values[name] = int(raw)
    _check_as_tf_serving_reads_it(path, text)
    threads = values.pop("num_batch_threads", None)
    if threads == 0:
        raise ValueError(f"batching parameters file {path}: field 'num_batch_threads' must be >= 1")
    return BatchingOptions(**values), threads, sorted(set(ignored))


def _check_as_tf_serving_reads_it(path: str | Path, text: str) -> None:
    """Parse ``text`` into TF Serving's ``BatchingParameters``: a file the real server would reject fails here too."""
    from google.protobuf import text_format

    from serving.tf_serving.protos import BatchingParameters

    try:
        text_format.Parse(text, BatchingParameters())
    except text_format.ParseError as err:
        raise ValueError(f"batching parameters file {path}: TF Serving would reject it: {err}") from None
