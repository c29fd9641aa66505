"""The spawn queue on its own: order, limit, places, and slots freed whatever happens."""

import asyncio

import pytest

from hubstead.hub.admission import SpawnQueue


def run(coro):
    return asyncio.run(coro)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_at_most_limit_start_and_the_rest_go_in_arrival_order():
    async def scenario():
        queue, admitted = SpawnQueue(2), []

        async def student(name):
            await queue.wait_turn(name)
            admitted.append(name)

        tasks = [asyncio.create_task(student(n)) for n in "abcde"]
        await settle()
        assert admitted == ["a", "b"]
        assert [queue.ahead_of(n) for n in "abcde"] == [None, None, 0, 1, 2]
        queue.release("b")
        await settle()
        assert admitted == ["a", "b", "c"]
        queue.release("a")
        queue.release("c")
        await settle()
        assert admitted == ["a", "b", "c", "d", "e"]
        await asyncio.gather(*tasks)

    run(scenario())


def test_asking_again_keeps_the_place():
    async def scenario():
        queue = SpawnQueue(1)
        await queue.wait_turn("a")
        waiters = [asyncio.create_task(queue.wait_turn(n)) for n in ("b", "c")]
        await settle()
        again = asyncio.create_task(queue.wait_turn("b"))  # b comes back to the page
        await settle()
        assert queue.ahead_of("b") == 0 and queue.ahead_of("c") == 1
        queue.release("a")
        await settle()
        assert again.done() and waiters[0].done() and not waiters[1].done()
        queue.release("b")
        await asyncio.gather(*waiters)

    run(scenario())


def test_a_waiter_that_gives_up_leaves_the_queue_and_a_release_frees_the_slot():
    async def scenario():
        queue = SpawnQueue(1)
        await queue.wait_turn("stuck")
        gives_up = asyncio.create_task(queue.wait_turn("b"))
        waits = asyncio.create_task(queue.wait_turn("c"))
        await settle()
        gives_up.cancel()
        await settle()
        assert queue.ahead_of("c") == 0
        queue.release("stuck")  # the stuck start timed out
        await asyncio.wait_for(waits, 1)
        assert queue.starting == 1 and queue.waiting == 0
        queue.release("c")
        queue.release("c")  # releasing twice (start() and the stop hook) changes nothing
        assert queue.starting == 0

    run(scenario())


def test_progress_streams_wake_when_the_queue_moves():
    async def scenario():
        queue = SpawnQueue(1)
        await queue.wait_turn("a")
        waiter = asyncio.create_task(queue.wait_turn("b"))
        watcher = asyncio.create_task(queue.changed(timeout=30))
        await settle()
        assert not watcher.done()
        queue.release("a")
        await asyncio.wait_for(watcher, 1)
        await waiter

    run(scenario())


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_holds_under_many_arrivals(limit):
    async def scenario():
        queue, running, peak = SpawnQueue(limit), 0, 0

        async def start(name):
            nonlocal running, peak
            await queue.wait_turn(name)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1
            queue.release(name)

        await asyncio.gather(*(start(i) for i in range(50)))
        assert peak == limit and queue.starting == 0

    run(scenario())
