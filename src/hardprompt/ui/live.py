"""Runs that a page watches: an app call in a worker thread, its latest progress, and its stop flag."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from ..apps.common import Progress, ProgressCallback
from ..optim.result import Result

AppCall = Callable[[ProgressCallback], Result]
"""An app call (invert, distill) given its progress callback."""


class LiveRun:
    """One app call in a worker thread; `updates` yields its latest progress every `every` seconds, then its result.

    When `stop` is set, the next step raises KeyboardInterrupt inside the run, which ends it with the
    best prompt so far (as Ctrl-C does on the command line).
    """

    def __init__(self, call: AppCall, stop: threading.Event, every: float = 0.25) -> None:
        self.stop = stop
        self.every = every
        self._latest: Progress | None = None
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(call,), daemon=True, name="hardprompt-run")

    def _report(self, progress: Progress) -> None:
        self._latest = progress
        if self.stop.is_set():
            raise KeyboardInterrupt

    def _work(self, call: AppCall) -> None:
        try:
            self._result = call(self._report)
        except BaseException as error:  # handed to the page's thread, which raises it
            self._error = error
        finally:
            self._done.set()

    def updates(self) -> Iterator[Progress | Result]:
        """Progress while the run lasts (only when it changed), then the result; the run's error is raised here.

        Closing the iterator early (the page went away) stops the run and waits for its thread.
        """
        self._thread.start()
        shown = None
        try:
            while not self._done.wait(self.every):
                if self._latest is not shown:
                    shown = self._latest
                    yield shown
        finally:
            self.stop.set()
            self._thread.join()
        if self._error is not None:
            raise self._error
        yield cast(Result, self._result)


class RunStops:
    """The stop flags of the runs waiting or in progress, one per key (a browser session and a tab).

    `arm` gives a key a fresh flag when its Run button is pressed, so a Stop pressed while the run
    still waits in the queue is kept; a run called without `arm` (an API client) gets one when it starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}
        self._running: set[str] = set()

    def arm(self, key: str) -> None:
        with self._lock:
            if key not in self._running:
                self._flags[key] = threading.Event()

    @contextmanager
    def running(self, key: str) -> Iterator[threading.Event]:
        """The run's stop flag while it runs; afterwards the key is free again."""
        with self._lock:
            flag = self._flags.setdefault(key, threading.Event())
            self._running.add(key)
        try:
            yield flag
        finally:
            with self._lock:
                self._running.discard(key)
                if self._flags.get(key) is flag:
                    del self._flags[key]

    def stop(self, key: str) -> bool:
        """Ask the run of `key` to stop; False when there is none."""
        with self._lock:
            flag = self._flags.get(key)
        if flag is not None:
            flag.set()
        return flag is not None

    def stop_session(self, session: str) -> None:
        """Stop every run of a browser session (its tab was closed)."""
        with self._lock:
            flags = [flag for key, flag in self._flags.items() if key.split(":", 1)[0] == session]
        for flag in flags:
            flag.set()
