"""Our Faust app's two fixes (processors/runtime/faustapp.py): the eager message hand-off behaves
like mode's `wait_first`, and flow control keeps queued events unless the flow was suspended.

The consumer under test is a plain mode Service with Faust's `suspend_flow` event, which is
all the hand-off touches; the real Faust consumer runs it in the pipeline tests.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from mode import Service
from mode.utils.locks import Event
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlQueue

from processors.runtime.faustapp import App, FlowControl, eager_consumer, resume


class _FlowService(Service):
    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = Event()


Consumer = eager_consumer(_FlowService)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_callback_that_need_not_wait_runs_inline_and_its_result_is_returned() -> None:
    async def main() -> tuple[Any, list[str], int]:
        consumer = Consumer()
        seen: list[str] = []

        async def callback(message: str) -> str:
            seen.append(message)
            return message.upper()

        before = len(asyncio.all_tasks())
        waited = await consumer.wait_first(callback("m1"), consumer.suspend_flow.wait())
        return waited, seen, len(asyncio.all_tasks()) - before

    waited, seen, new_tasks = run(main())
    assert seen == ["m1"]
    assert waited.results == ["M1"] and not waited.stopped
    assert new_tasks == 0


def test_a_callback_blocked_on_a_full_queue_finishes_when_there_is_room() -> None:
    async def main() -> tuple[list[int], Any]:
        consumer = Consumer()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)

        async def callback(n: int) -> int:
            await queue.put(n)
            return n

        async def drain() -> list[int]:
            await asyncio.sleep(0.05)
            return [queue.get_nowait()]

        drained = asyncio.ensure_future(drain())
        waited = await consumer.wait_first(callback(7), consumer.suspend_flow.wait())
        return await drained + [queue.get_nowait()], waited

    order, waited = run(main())
    assert order == [0, 7]
    assert waited.results == [7]


def test_suspending_the_flow_cancels_a_blocked_callback_like_mode_does() -> None:
    async def main() -> tuple[Any, list[str]]:
        consumer = Consumer()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        trace: list[str] = []

        async def callback() -> None:
            try:
                await never
            except asyncio.CancelledError:
                trace.append("cancelled")
                raise

        async def suspend() -> None:
            await asyncio.sleep(0.05)
            consumer.suspend_flow.set()

        suspender = asyncio.ensure_future(suspend())
        waited = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        await suspender
        await asyncio.sleep(0)  # let the cancelled callback's task run its except clause
        return waited, trace

    waited, trace = run(main())
    assert trace == ["cancelled"]
    assert waited.results == [True]  # suspend_flow.wait() won


def test_errors_of_the_callback_propagate_inline_and_after_waiting() -> None:
    async def main(wait_first: bool) -> None:
        consumer = Consumer()

        async def callback() -> None:
            if wait_first:
                await asyncio.sleep(0.01)
            raise ValueError("bad message")

        await consumer.wait_first(callback(), consumer.suspend_flow.wait())

    for wait_first in (False, True):
        with pytest.raises(ValueError, match="bad message"):
            run(main(wait_first))


def test_other_calls_go_to_modes_wait_first() -> None:
    async def main() -> Any:
        consumer = Consumer()
        done = Event()
        done.set()
        return await consumer.wait_first(done, timeout=1.0)

    assert run(main()).results == [True]


def test_resume_finishes_a_started_coroutine_with_its_exception_from_a_future() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[int] = loop.create_future()
        second: asyncio.Future[int] = loop.create_future()

        async def two_steps() -> int:
            a = await first
            try:
                await second
            except KeyError:
                return a + 100
            return -1

        coro = two_steps()
        blocker = coro.send(None)
        assert blocker is first
        task = asyncio.ensure_future(resume(coro, blocker))
        first.set_result(1)
        await asyncio.sleep(0)
        second.set_exception(KeyError("x"))
        assert await task == 101

    run(main())


def test_resume_keeps_queued_events_unless_the_flow_was_suspended() -> None:
    async def main() -> tuple[int, int]:
        flow = FlowControl()
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        flow.resume()  # Faust starts with the flow suspended until the first assignment
        queue.put_nowait(1)
        flow.resume()  # what the end of a rebalance calls again while the flow is running
        kept = queue.qsize()
        flow.suspend()  # a revocation: what is queued belongs to partitions being taken away
        flow.resume()
        return kept, queue.qsize()

    kept, after_suspension = run(main())
    assert kept == 1
    assert after_suspension == 0


def test_the_app_uses_both_fixes() -> None:
    app = App("vdp-unit-test", broker="kafka://127.0.0.1:1", store="memory://")
    assert isinstance(app.flow_control, FlowControl)
    consumer_class = app.transport.Consumer
    assert issubclass(consumer_class, AIOKafkaConsumer)
    assert consumer_class.wait_first is not AIOKafkaConsumer.wait_first


# -- the seam's guard: the library code both fixes depend on, read from the installed code.
# A version bump that changes any of it fails here, not silently in production.


def _pins() -> dict[str, str]:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    return dict(re.findall(r'"(faust-streaming|mode-streaming)==([0-9.]+)"', text))


def test_faust_and_mode_are_pinned_exactly_and_installed_at_the_pins() -> None:
    pins = _pins()
    assert set(pins) == {"faust-streaming", "mode-streaming"}, pins
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name


def test_faust_still_hands_each_message_over_through_wait_first_with_suspend_flow() -> None:
    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer._drain_messages)
    hand_off = r"await self\.wait_first\(\s*callback\(message\), self\.suspend_flow\.wait\(\)"
    assert re.search(hand_off, source), "Faust's message hand-off changed: review faustapp.py"


def test_modes_resume_still_clears_every_queue_and_faust_still_calls_it_after_recovery() -> None:
    from faust.tables.recovery import Recovery
    from mode.utils.queues import FlowControlEvent

    resume_source = inspect.getsource(FlowControlEvent.resume)
    assert "self.clear()" in resume_source
    assert "queue.clear()" in inspect.getsource(FlowControlEvent.clear)
    assert "flow_control.resume()" in inspect.getsource(Recovery.on_recovery_completed)
    assert "def is_active" in inspect.getsource(FlowControlEvent)


def test_the_app_s_hooks_are_still_faust_s_own_extension_points() -> None:
    base_transport = inspect.getsource(faust.App._new_transport)
    assert "transport.by_url" in base_transport
    assert isinstance(inspect.getattr_static(faust.App, "flow_control"), cached_property)
