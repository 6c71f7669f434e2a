"""Runs validated predict inputs on a servable, shared by the REST and gRPC front ends.

Inference runs in a thread pool (the event loop never blocks on TensorFlow) and, with batching on, through the
adaptive :class:`serving.batching.Batcher`, so REST and gRPC requests for the same servable share batches.

Example:
    >>> engine = Inference(num_threads=2, batching=BatchingOptions())  # doctest: +SKIP
    >>> outputs = await engine.predict(servable, "serving_default", inputs)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from serving.batching import Batcher, BatchingOptions, batch_size_of
from serving.model_store import Servable


class Inference:
    """The inference thread pool and, optionally, the batcher in front of it.

    Args:
        num_threads: Threads running inference (TF Serving's ``num_batch_threads``).
        batching: Server-side batching options, or ``None`` to run each request on its own.
    """

    def __init__(self, num_threads: int, batching: BatchingOptions | None = None) -> None:
        self.num_threads = num_threads
        self.executor = ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="inference")
        self.batcher = Batcher(batching, self.executor, max_running=num_threads) if batching else None
        self._on_run: Callable[[str, str, int], None] | None = None
        self._in_flight = 0  # unbatched runs submitted and not finished (counted while ``on_run`` is set)

    @property
    def on_run(self) -> Callable[[str, str, int], None] | None:
        """Called with ``(model name, signature, examples)`` for each TensorFlow run started (metrics)."""
        return self._on_run

    @on_run.setter
    def on_run(self, callback: Callable[[str, str, int], None] | None) -> None:
        self._on_run = callback
        if self.batcher is not None:
            self.batcher.on_batch = None if callback is None else (lambda key, size: callback(key[0], key[2], size))

    def queue_depth(self) -> int:
        """Batches (or, without batching, requests) waiting for an inference thread."""
        if self.batcher is not None:
            return self.batcher.queue_depth()
        return max(0, self._in_flight - self.num_threads)

    def running(self) -> int:
        """Batches (or requests) in the inference threads."""
        if self.batcher is not None:
            return self.batcher.running()
        return min(self._in_flight, self.num_threads)

    def _unbatched(self, servable: Servable, signature: str, size: int, future: asyncio.Future) -> asyncio.Future:
        if self._on_run is not None:
            self._on_run(servable.name, signature, size)
            self._in_flight += 1
            future.add_done_callback(self._run_done)
        return future

    def _run_done(self, _: asyncio.Future) -> None:
        self._in_flight -= 1

    async def predict(
        self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Outputs of ``signature`` for ``inputs`` (already checked with ``servable.check_shapes``).

        Raises:
            ServingError: TensorFlow errors with their canonical code, batch limits (400) or a full queue (503).
        """
        return await self.submit(servable, signature, inputs)

    def submit(
        self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray]
    ) -> asyncio.Future[dict[str, np.ndarray]]:
        """:meth:`predict` without a coroutine (no task per request): the future of the outputs.

        Must be called from the running event loop; batch limits and a full queue raise at once.
        """
        run = functools.partial(servable.run, signature, validate=False)
        size = batch_size_of(inputs)
        if self.batcher is not None and size is not None:
            return self.batcher.submit((servable.name, servable.version, signature), run, inputs)
        future = asyncio.get_running_loop().run_in_executor(self.executor, run, inputs)
        return self._unbatched(servable, signature, size or 1, future)

    def submit_example(self, servable: Servable, signature: str, example: dict[str, Any]) -> asyncio.Future[dict]:
        """:meth:`submit` for one example of Python scalars read by ``servable.instance_readers[signature]``; its
        arrays are made in the inference thread, with the rest of its batch (no numpy work on the event loop)."""
        run = functools.partial(servable.run, signature, validate=False)
        reader = servable.instance_readers[signature]
        if self.batcher is not None:
            key = (servable.name, servable.version, signature)
            return self.batcher.submit_example(key, run, example, reader.example_key, reader.columns)
        future = asyncio.get_running_loop().run_in_executor(self.executor, _run_examples, run, reader.columns, example)
        return self._unbatched(servable, signature, 1, future)

    def close(self) -> None:
        """Stop the thread pool (queued work is cancelled)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_examples(run: Any, columns: Any, example: dict[str, Any]) -> dict[str, np.ndarray]:
    return run(columns([example]))
