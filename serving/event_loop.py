"""The asyncio event loop the server runs on: uvloop when it is installed, the standard one otherwise.

uvloop (libuv underneath) runs the same asyncio code with cheaper sockets, callbacks and thread wake-ups. On the
server's request path (the HTTP front end, grpc.aio, futures completed from inference threads) it measured 1.13×
the batched requests/s at concurrency 32 and 0.86× the server CPU per request, with no measurable change without
batching (5 alternated rounds; ``docs/serving.md``, design decisions). ``asyncio`` stays available
(``--event-loop asyncio``) and is what runs where uvloop has no build (Windows).

Example:
    >>> run_on(asyncio.sleep(0, result=3), "asyncio")
    3
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOPS = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of ``kind``'s event loop: ``uvloop``, ``asyncio`` or ``auto`` (uvloop if importable).

    Raises:
        ValueError: an unknown ``kind``, or ``uvloop`` asked for but not installed.
    """
    if kind not in EVENT_LOOPS:
        raise ValueError(f"event loop {kind!r} is unknown; expected one of {EVENT_LOOPS}")
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ValueError(
                    "event loop 'uvloop' asked for but uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which implementation ``loop`` is."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_on(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """``asyncio.run(main)`` on ``kind``'s event loop (see :func:`loop_factory`)."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
