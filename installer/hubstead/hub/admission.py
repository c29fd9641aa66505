"""Admission control for server starts: at most ``limit`` starting at once, the rest
waiting in arrival order.

A JupyterLab start is CPU-bound (seconds of imports); sixty of them at once on two
cores make every one slow and most of them time out. Admitted a few at a time, each
start runs at full speed and the class is served at the rate the cores allow.
Pure asyncio, one instance per hub process (see HubsteadSpawner).
"""

import asyncio
import collections
import os


def default_limit() -> int:
    """Starts at once when limits.concurrent_spawns is not set: one per core this
    process may run on, plus one so a core never idles while a start waits on I/O."""
    return len(os.sched_getaffinity(0)) + 1


class SpawnQueue:
    def __init__(self, limit: int):
        self.limit = limit
        self._starting: set = set()
        self._waiting: collections.OrderedDict = collections.OrderedDict()  # key -> Future
        self._changed = asyncio.Event()

    def __repr__(self):
        return f"SpawnQueue(limit={self.limit}, starting={len(self._starting)}, waiting={len(self._waiting)})"

    def _notify(self) -> None:
        # Wake every progress stream; each takes a fresh Event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def _admit(self) -> None:
        while self._waiting and len(self._starting) < self.limit:
            key, turn = self._waiting.popitem(last=False)
            self._starting.add(key)
            turn.set_result(None)
        self._notify()

    async def wait_turn(self, key) -> None:
        """Return once ``key`` may start. Idempotent for a key already admitted or
        waiting (a second request keeps the first one's place)."""
        if key in self._starting:
            return
        turn = self._waiting.get(key)
        if turn is None:
            turn = self._waiting[key] = asyncio.get_running_loop().create_future()
            self._admit()
        try:
            await asyncio.shield(turn)
        except asyncio.CancelledError:
            self.release(key)  # gave up waiting, or was admitted just as it went away
            raise

    def release(self, key) -> None:
        """``key``'s start is over (up, failed or cancelled): the next one may go.
        Releasing a key that holds no place does nothing."""
        if key in self._starting:
            self._starting.discard(key)
            self._admit()
        elif self._waiting.pop(key, None) is not None:
            self._notify()

    def ahead_of(self, key) -> int | None:
        """How many starts wait before ``key``'s (0: next), or None once it may start."""
        for position, waiting in enumerate(self._waiting):
            if waiting == key:
                return position
        return None

    @property
    def starting(self) -> int:
        return len(self._starting)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def changed(self, timeout: float) -> None:
        """Wait until the queue moves (or ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
