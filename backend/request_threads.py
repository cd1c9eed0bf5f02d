"""Sync threads for HTTP requests, kept and lent again.

Django's ASGI handler runs a request's sync code (the ORM, sync resolvers, the
signals around the request) in a thread of the request's own, made for it and
shut down after it (asgiref's ``ThreadSensitiveContext``). Database connections
belong to their thread, so each request also opened a database connection and
closed it again: on Postgres a TCP connection with its authentication (about
4 ms on a local server), on SQLite a file open with its PRAGMAs (about 0.5 ms).

Here each request still has one thread for all its sync code, as Django
requires (transactions, thread-locals), but the thread is borrowed from a pool
at the request's first sync call and given back when the request ends, with its
database connection open for the next request (``CONN_MAX_AGE``, health-checked
by Django at the start and end of each request). The pool grows as far as
concurrent requests need, as Django's own threads do; a thread given back while
``REQUEST_THREADS_IDLE`` threads already wait closes its connections and ends,
so the connections kept stay bounded.

asgiref documents the executor argument of ``ThreadSensitiveContext`` for this
use (the caller owns the executor and may use it again); Django's handler then
enters its own context inside ours, which changes nothing.
"""

from __future__ import annotations

import concurrent.futures
import threading

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.db import connections


class _Pool:
    def __init__(self) -> None:
        self._idle: list[concurrent.futures.ThreadPoolExecutor] = []
        self._lock = threading.Lock()  # requests of event loops in other threads (tests) share it

    def lend(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, thread: concurrent.futures.ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < settings.REQUEST_THREADS_IDLE:
                self._idle.append(thread)
                return
        _retire(thread)

    def close(self) -> None:
        """End every idle thread, closing its database connections (waits for them)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for thread in idle:
            _retire(thread, wait=True)

    def idle(self) -> int:
        return len(self._idle)


def _retire(thread: concurrent.futures.ThreadPoolExecutor, wait: bool = False) -> None:
    # After whatever the thread still runs: its connections go with it.
    thread.submit(connections.close_all)
    thread.shutdown(wait=wait)


pool = _Pool()


class _RequestThread(concurrent.futures.Executor):
    """One request's sync thread, borrowed from the pool at its first sync call
    (a request that never needs one, e.g. a static file or a probe, takes none)."""

    def __init__(self) -> None:
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, fn, /, *args, **kwargs):
        if self._thread is None:
            self._thread = pool.lend()
        return self._thread.submit(fn, *args, **kwargs)

    def release(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            pool.give_back(thread)


def reuse_request_threads(app):
    """ASGI middleware for Django's HTTP handler: each request's sync code runs in
    a thread lent from the pool (see above)."""

    async def application(scope, receive, send):
        thread = _RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                return await app(scope, receive, send)
        finally:
            thread.release()

    return application


class OneThreadMiddleware:
    """The innermost middleware: sync only, so that the whole chain above it runs
    in the request's thread, entered once, and the event loop is entered once, for
    the view.

    Django runs a middleware that works both ways in the mode of what it wraps.
    Below an async view (Strawberry's) the chain above would be async, and each
    of Django's own middlewares (``MiddlewareMixin``: security, sessions, CSRF,
    authentication, messages, clickjacking) would then send every
    ``process_request`` and ``process_response`` call to the request's thread and
    back: about a dozen hand-offs per request, each a wake-up of another thread
    and a hand-over of the GIL, which a busy server pays in latency. WhiteNoise,
    sync only, already kept the middlewares above it in the thread; this keeps
    the ones below it there too.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response  # the view's handler, called through async_to_sync by Django

    def __call__(self, request):
        return self.get_response(request)
