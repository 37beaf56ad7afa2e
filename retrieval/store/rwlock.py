"""A lock for many readers or one writer, as the collection's indexes need it."""

from __future__ import annotations

import threading
from contextlib import contextmanager


class ReadWriteLock:
    """Any number of readers at once, or one writer alone. Not re-entrant.

    A waiting writer goes before readers that arrive after it: fifty clients searching in a
    loop could otherwise keep an ingest from ever updating the index.
    """

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self):
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self):
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
