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
