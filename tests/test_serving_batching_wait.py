"""The batcher keeps a quiet batch open while every inference thread is busy, so requests that reach the event loop
one per iteration (as gRPC calls do) share a batch once a thread frees up."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from serving.batching import Batcher, BatchingOptions


def test_quiet_batch_waits_for_a_free_thread_and_keeps_growing():
    sizes, release = [], threading.Event()

    def fn(inputs):
        sizes.append(len(inputs["x"]))
        release.wait(10)
        return {"y": inputs["x"] * 2}

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=5_000_000), pool, max_running=1)
            first = batcher.submit("k", fn, {"x": np.array([1.0])})  # idle server: runs at once, holds the thread
            trickle = []
            try:
                for value in (2.0, 3.0, 4.0):  # one request per loop iteration, each long after the previous
                    trickle.append(batcher.submit("k", fn, {"x": np.array([value])}))
                    await asyncio.sleep(0.02)
                assert batcher.queue_depth() == 1 and sizes == [1]  # one open batch, not three queued ones
            finally:
                release.set()
            outputs = await asyncio.wait_for(asyncio.gather(first, *trickle), 10)
        return [o["y"].tolist() for o in outputs]

    assert asyncio.run(scenario()) == [[2.0], [4.0], [6.0], [8.0]]
    assert sizes == [1, 3]
