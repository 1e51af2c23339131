"""The bench's background threads: stoppable, and keeping the exception they died of for their owner."""

from __future__ import annotations

import threading


class Worker(threading.Thread):
    """A daemon thread running ``work()``; ``stop()`` sets ``_stop_event``, which ``work`` watches."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # reported by the caller, which owns the run
            self.error = exc

    def work(self) -> None:
        raise NotImplementedError
