"""Server-side batching of concurrent predict requests, modelled on TF Serving's basic batch scheduler.

Requests for the same servable and signature whose inputs share dtypes and per-example shapes are queued
together; a batch is run when it reaches ``max_batch_size`` examples or ``batch_timeout_micros`` after its first
request, whichever comes first. Each batch is concatenated along axis 0, run once in the thread pool, and its
outputs are split back per request. A request larger than ``max_batch_size`` is rejected (400) and a full queue
answers UNAVAILABLE (503), as TF Serving does.

Example:
    >>> batcher = Batcher(BatchingOptions(max_batch_size=64), executor)  # doctest: +SKIP
    >>> outputs = await batcher.run(key, servable_fn, inputs)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor

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
    inputs: Arrays
    size: int
    future: asyncio.Future


class Batcher:
    """Merges concurrent requests into batches; must be used from one event loop.

    Args:
        options: Batch size, timeout and queue limits.
        executor: Thread pool that runs each merged batch (keeps the event loop free).
    """

    def __init__(self, options: BatchingOptions, executor: Executor) -> None:
        self.options = options
        self.executor = executor
        self._open: dict[Hashable, list[_Pending]] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._enqueued = 0
        self.batches_run = 0

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
        size = batch_size_of(inputs)
        if size is None:
            raise RequestError("Batching needs every input to share the same leading (batch) dimension")
        if size > self.options.max_batch_size:
            raise RequestError(
                f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}"
            )
        full_key = (key, tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items())))
        loop = asyncio.get_running_loop()
        pending = self._open.get(full_key)
        if pending and sum(p.size for p in pending) + size > self.options.max_batch_size:
            self._flush(full_key, fn)
            pending = None
        if pending is None:
            if self._enqueued >= self.options.max_enqueued_batches:
                raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full")
            pending = self._open[full_key] = []
            self._enqueued += 1
            delay = self.options.batch_timeout_micros / 1e6
            self._timers[full_key] = loop.call_later(delay, self._flush, full_key, fn)
        item = _Pending(inputs, size, loop.create_future())
        pending.append(item)
        if sum(p.size for p in pending) >= self.options.max_batch_size:
            self._flush(full_key, fn)
        return await item.future

    def _flush(self, key: Hashable, fn: Callable[[Arrays], dict[str, np.ndarray]]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        batch = self._open.pop(key, None)
        if batch:
            asyncio.get_running_loop().create_task(self._execute(batch, fn))

    async def _execute(self, batch: list[_Pending], fn: Callable[[Arrays], dict[str, np.ndarray]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            names = list(batch[0].inputs)
            merged = (
                {n: np.concatenate([p.inputs[n] for p in batch]) for n in names} if len(batch) > 1 else batch[0].inputs
            )
            outputs = await loop.run_in_executor(self.executor, fn, merged)
            self.batches_run += 1
            total = sum(p.size for p in batch)
            bad = [n for n, a in outputs.items() if np.ndim(a) == 0 or np.shape(a)[0] != total]
            if bad and len(batch) > 1:
                raise ServingError("INTERNAL", f"Batched outputs {bad} do not have the batch dimension {total}")
            start = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(
                        {n: a[start : start + p.size] for n, a in outputs.items()} if len(batch) > 1 else outputs
                    )
                start += p.size
        except Exception as err:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
        finally:
            self._enqueued -= 1
