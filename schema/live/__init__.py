"""Live delivery: everything between a stored event and a subscriber's socket.

- ``consumer``: the WebSocket transport (Strawberry's Channels consumer, both
  protocols), JWT at ``connection_init``, limits and faults of the socket.
- ``http_stream``: subscriptions over HTTP (GraphQL over SSE, multipart), each
  stream the engine's sink for its subscription, with the same shared rendering.
- ``fast_path``: Strawberry's protocol handlers made known to their consumer, and
  the fast path that writes one shared frame per event to the idle subscribers.
- ``shared_events``: subscription events executed once per event and shared by
  the subscribers who would see the same result.
- ``*_adapter``: every private attribute of a library the live path needs, one
  module per library, each guarded by tests/schema/test_live_adapters.py, which
  fails when an upgrade moves one of them.

The domain side (which events a subscriber receives, in which order, with which
cursor) is ``chat.realtime``; it reaches the transport only through its ports:
``Sink`` and ``DrivingSink`` (where a subscription's deliveries go: the WebSocket
fast path's and the HTTP streams' sinks) and ``SignedInConnection`` (a connection
the hub closes when its user's tokens are revoked: the consumer, an HTTP stream).
"""
