"""Our Faust apps: `App` is `faust.App` with two fixes to faust-streaming 0.15.3's consumer
path, for any Faust stream (the broker's Faust test in `tests/integration/test_kafka.py`
runs one); `WorkerApp` is the processors' worker, which reads no stream through Faust.

1. **No four asyncio tasks per message.** Faust hands every fetched message to the topic
   conductor with `await self.wait_first(callback(message), self.suspend_flow.wait())` (in
   `Consumer._drain_messages`), so that a callback blocked on a full stream buffer cannot
   hold up a rebalance. mode's `wait_first` wraps each argument, and the service's stopped
   and crashed events, in a task and runs `asyncio.wait` over the four: about 100 µs per
   message on this machine, most of the processor's time per frame (the "Faust speed"
   pitfall). Almost always the callback does not wait at all: it decodes nothing (raw
   serializers) and puts the event into a stream queue that has room. So it runs eagerly,
   inline, up to its first suspension; only a callback that really has to wait is resumed
   in a task and raced against `suspend_flow` exactly as Faust does. The same callback runs
   on the same loop in the same order, its exceptions propagate the same way, and every
   other `wait_first` of the consumer goes to mode's.

2. **No events dropped at the end of a rebalance.** After partitions are assigned, Faust
   resumes the flow into the stream queues, then (`Recovery.on_recovery_completed`) seeks
   to the committed offsets and calls `flow_control.resume()` again. mode's `resume()`
   always clears every stream queue, also when the flow is already running; a fetcher that
   is running (any rebalance but the first, or a worker with tables to restore) may have
   delivered records during the seek, and those are thrown away unacked while the consumer
   position is past them. Faust's commit then skips a lone missing offset (its gap check in
   `Consumer._new_offset` lets a gap of one through), so the record is lost for good (the
   restart test in `tests/integration/test_kafka.py` guards it; README, "Stream
   processors", has the history). Here `resume()` clears the queues only when the flow
   really was suspended (a revocation already cleared them then). Keeping a queued event
   at worst processes a record twice, which the sink's idempotent writes absorb.

Both fixes rest on faust-streaming's and mode-streaming's internals, so both libraries
are pinned exactly and `tests/unit/test_faustapp.py` reads the installed code they rely
on: a version that changes it fails there, not silently here.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.types import TransportT
from mode.services import WaitResults
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent


class _Suspended:
    """Awaiting it hands `blocker` (what a coroutine yielded) to the running task, as if the
    coroutine itself had yielded it there, and returns what the task sends back."""

    __slots__ = ("blocker",)

    def __init__(self, blocker: Any) -> None:
        self.blocker = blocker

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.blocker)


async def resume(coro: Coroutine[Any, Any, Any], blocker: Any) -> Any:
    """Finish `coro`, already run up to its first suspension on `blocker`, inside the task
    that awaits this: the task waits on each blocker, then steps `coro` on; exceptions and
    cancellation thrown into the task go into `coro`, as if the task ran it from the start."""
    while True:
        try:
            await _Suspended(blocker)
        except BaseException as exc:  # cancellation too: it belongs to coro
            try:
                blocker = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                blocker = coro.send(None)
            except StopIteration as stop:
                return stop.value


def _is_hand_off(coros: tuple[Any, ...], suspend_flow: Any) -> bool:
    """Whether this is `_drain_messages`' call: (callback coroutine, `suspend_flow.wait()`)."""
    return (
        len(coros) == 2
        and isinstance(coros[0], Coroutine)
        and isinstance(coros[1], Coroutine)
        and getattr(coros[1], "cr_code", None) is suspend_flow.wait.__code__
    )


def eager_consumer(base: type[Any]) -> type[Any]:
    """`base` (the transport's consumer class) with the eager message hand-off."""

    # Named where it is made: mode registers a service class's tasks under its qualname.
    class EagerConsumer(base):
        async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
            if timeout is None and _is_hand_off(coros, self.suspend_flow):
                callback, suspended = coros
                if not self.suspend_flow.is_set():
                    try:
                        blocker = callback.send(None)
                    except StopIteration as stop:
                        suspended.close()
                        return WaitResults([callback], [stop.value], False)
                    except BaseException:
                        suspended.close()
                        raise
                    callback = resume(callback, blocker)
                return await super().wait_first(callback, suspended)
            return await super().wait_first(*coros, timeout=timeout)

    return EagerConsumer


class FlowControl(FlowControlEvent):
    """Flow control whose `resume()` keeps queued events when the flow was not suspended."""

    def resume(self) -> None:
        if not self.is_active():
            super().resume()


class App(faust.App):
    """`faust.App` with both fixes above."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)

    def _new_transport(self) -> TransportT:
        transport = super()._new_transport()
        transport.Consumer = eager_consumer(transport.Consumer)  # type: ignore[misc]
        return transport


class _NoKafkaConsumer(BootStrategy):
    enable_kafka_consumer = False


class WorkerApp(App):
    """The processors' worker: no Faust consumer at all (the raw topic is read by
    `processors.runtime.consumer.RawConsumer`, the book topics by their readers). Faust
    cannot start a consumer with nothing to subscribe to (its conductor subscribes to an
    empty topic set, which aiokafka refuses), and its documented `BootStrategy` switch
    leaves the consumer, conductor and tables out of the worker's services."""

    BootStrategy = _NoKafkaConsumer
