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
from collections.abc import Mapping
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
        self.executor = ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="inference")
        self.batcher = Batcher(batching, self.executor, max_running=num_threads) if batching else None

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
        if self.batcher is not None and batch_size_of(inputs) is not None:
            return self.batcher.submit((servable.name, servable.version, signature), run, inputs)
        return asyncio.get_running_loop().run_in_executor(self.executor, run, inputs)

    def submit_example(self, servable: Servable, signature: str, example: dict[str, Any]) -> asyncio.Future[dict]:
        """:meth:`submit` for one example of Python scalars read by ``servable.instance_readers[signature]``; its
        arrays are made in the inference thread, with the rest of its batch (no numpy work on the event loop)."""
        run = functools.partial(servable.run, signature, validate=False)
        reader = servable.instance_readers[signature]
        if self.batcher is not None:
            key = (servable.name, servable.version, signature)
            return self.batcher.submit_example(key, run, example, reader.example_key, reader.columns)
        return asyncio.get_running_loop().run_in_executor(self.executor, _run_examples, run, reader.columns, example)

    def close(self) -> None:
        """Stop the thread pool (queued work is cancelled)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_examples(run: Any, columns: Any, example: dict[str, Any]) -> dict[str, np.ndarray]:
    return run(columns([example]))
