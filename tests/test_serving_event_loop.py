"""The server's event loop choice (serving.event_loop): uvloop when installed, asyncio on request."""

import asyncio

import pytest

from serving import cli
from serving.event_loop import EVENT_LOOPS, loop_factory, loop_name, run_on
from serving.server_config import ServerConfig


def test_auto_is_uvloop_when_installed_and_asyncio_stays_available():
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") is loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is asyncio.new_event_loop

    async def which() -> str:
        return loop_name(asyncio.get_running_loop())

    assert run_on(which(), "auto") == "uvloop"
    assert run_on(which(), "asyncio") == "asyncio"


def test_unknown_event_loop_is_refused_by_name():
    with pytest.raises(ValueError, match=r"event loop 'tornado' is unknown; expected one of \('auto'"):
        loop_factory("tornado")
    with pytest.raises(ValueError, match="event loop 'tornado' is unknown"):
        ServerConfig(event_loop="tornado")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--base-path", "x", "--event-loop", "tornado"])
    assert cli.build_parser().parse_args(["serve", "--base-path", "x"]).event_loop == "auto" == EVENT_LOOPS[0]
