"""The ASGI application: ``daphne backend.asgi:application`` serves everything.

HTTP goes to Django (``/graphql/`` is Strawberry's async Django view, so
middleware and upload handlers apply); WebSocket ``/graphql/`` goes to
Strawberry's Channels consumer, which authenticates with the JWT itself.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

from backend import tracing

tracing.configure()  # OTEL_* set: before the handler below loads the middleware

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # sets up Django before the imports below

from channels.routing import URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from backend.request_threads import reuse_request_threads  # noqa: E402
from schema import schema  # noqa: E402
from schema.live import drain  # noqa: E402
from schema.live.consumer import GraphQLConsumer  # noqa: E402
from schema.live.http_stream import with_send_in_scope  # noqa: E402

# SIGTERM drains the process before it stops (docs/operations.md#shutdown-and-drain).
application = drain.DrainGate(
    http=with_send_in_scope(reuse_request_threads(django_asgi_app)),
    websocket=URLRouter([re_path(r"^graphql/?$", GraphQLConsumer.as_asgi(schema=schema))]),
)
drain.install()

# Everything loaded so far (Django, the schema, the modules) lives as long as the
# process: frozen, the collector's full passes no longer walk it. Those passes
# otherwise walked the whole heap, a pause of 150 ms or more under a busy socket
# load, which every delivery in flight at that moment waited out.
gc.freeze()
# A request, or an event's fan-out, allocates thousands of objects, nearly all freed by
# reference counting when it ends; some sit in reference cycles (Django's request and
# its message storage, graphql-core's execution context) that only the collector frees.
# At Python's default of a young collection every 700 allocations, objects of the
# requests in flight survive young collections, are promoted and pile up into full
# collections: a pause of every connection of the process, several times a second
# under load. Collecting the young generation every 10,000 allocations lets a
# request's objects die young, at the cost of a few MB of garbage kept a little longer.
gc.set_threshold(10_000, 10, 10)
