"""The library internals the live path reaches (schema/live/*_adapter.py) are
still where the adapters look for them.

Each test names the library and the attribute: when an upgrade moves one, this
fails here, with that name, instead of delivery silently degrading (a fast path
that never engages, a slow client never cut off, a group left behind)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import re
import types
from collections import deque

import pytest
import strawberry
from autobahn.twisted.websocket import WebSocketServerProtocol
from channels.consumer import AsyncConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from graphql import Executor
from strawberry.channels import GraphQLWSConsumer
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import Info
from twisted.internet.abstract import FileDescriptor
from twisted.internet.tcp import Connection as TCPConnection
from twisted.protocols.tls import TLSMemoryBIOProtocol

from schema import schema
from schema.live import (
    autobahn_adapter,
    channels_adapter,
    daphne_adapter,
    django_adapter,
    drain,
    http_stream,
    strawberry_adapter,
    twisted_adapter,
)
from schema.live.channels_adapter import LinearInMemoryChannelLayer
from schema.live.channels_redis_adapter import WaitingRedisChannelLayer
from schema.live.consumer import GraphQLConsumer


def assigns(function, *attributes: str) -> None:
    source = inspect.getsource(function)
    for attribute in attributes:
        assert f"self.{attribute}" in source, f"{function.__qualname__} no longer sets/uses self.{attribute}"


# --- Strawberry ----------------------------------------------------------------------------


class TestStrawberry:
    def test_consumer_keeps_its_message_queue(self):
        consumer = GraphQLWSConsumer(schema=schema)
        assert hasattr(consumer, "message_queue")

    def test_channel_listening_bookkeeping_is_per_socket_and_unused_without_a_layer(self):
        # strawberry_adapter.no_channel_listening replaces exactly these three attributes.
        consumer = GraphQLWSConsumer(schema=schema)
        assert {"listen_queues", "_group_refs", "_group_lock"} <= set(vars(consumer))
        assigns(GraphQLWSConsumer.dispatch, "listen_queues[type_]")
        listen = inspect.getsource(GraphQLWSConsumer.listen_to_channel)
        assert listen.index("if self.channel_layer is None") < listen.index("self.listen_queues")

    def test_handlers_keep_their_view_operations_and_tasks(self):
        assigns(BaseGraphQLTransportWSHandler.__init__, "view", "operations")
        assigns(BaseGraphQLWSHandler.__init__, "view", "tasks")
        assert {"id", "task", "completed"} <= set(Operation.__slots__)

    def test_the_read_loops_handle_frame_and_end_handler_stand_for(self):
        # strawberry_adapter.handle_frame / end_handler do what each handler's handle() does per
        # frame and at its end; a change there (another close code, another clean-up) shows here.
        transport = inspect.getsource(BaseGraphQLTransportWSHandler.handle)
        for expected in (
            "on_request_accepted()",
            "self.websocket.iter_json()",
            "self.handle_message(",
            'handle_invalid_message("WebSocket message type must be text")',
            'handle_invalid_message(\n                    "WebSocket message must be valid JSON"',
            "await self.shutdown()",
        ):
            assert expected in transport, expected
        legacy = inspect.getsource(BaseGraphQLWSHandler.handle)
        for expected in (
            "iter_json(\n                    ignore_parsing_errors=True",
            "self.handle_message(",
            'code=1002, reason="WebSocket message type must be text"',
            "self.keep_alive_task.cancel()",
            "await self.cleanup()",
        ):
            assert expected in legacy, expected
        adapter = inspect.getsource(GraphQLWSConsumer.websocket_adapter_class.iter_json)
        assert "self.view.decode_json(" in adapter and "json.JSONDecodeError" in adapter

    def test_connection_init_cancels_the_timer_it_started(self):
        # TransportWSHandler.handle_connection_init drops the cancelled timer task.
        assigns(BaseGraphQLTransportWSHandler.on_request_accepted, "connection_init_timeout_task")
        assigns(
            BaseGraphQLTransportWSHandler.handle_connection_init,
            "connection_init_timeout_task.cancel",
            "connection_init_received",
        )

    def test_what_a_take_over_relies_on(self):
        # graphql-transport-ws: a completed Operation sends nothing more; the client's
        # complete and the socket's end go through cleanup_operation; complete forgets the id.
        assigns(Operation.send_operation_message, "completed", "handler.forget_id")
        assigns(BaseGraphQLTransportWSHandler.handle_complete, "cleanup_operation")
        assigns(BaseGraphQLTransportWSHandler.shutdown, "cleanup_operation")
        assigns(BaseGraphQLTransportWSHandler.run_operation, "_send_result_stream")
        assert list(inspect.signature(Operation.__init__).parameters) == [
            "self",
            "handler",
            "id",
            "query",
            "variables",
            "operation_name",
        ]
        # graphql-ws: the results task forgets its id when it ends and says complete
        # through send_message; stop and the socket's end go through cleanup_operation.
        assigns(BaseGraphQLWSHandler.handle_async_results, "tasks.pop", "send_message")
        assigns(BaseGraphQLWSHandler.handle_stop, "cleanup_operation")
        assigns(BaseGraphQLWSHandler.cleanup, "cleanup_operation")
        assert list(inspect.signature(BaseGraphQLWSHandler.handle_async_results).parameters)[1] == "operation_id"

    def test_operation_lookup_by_task(self):
        task = object()
        handler = BaseGraphQLTransportWSHandler.__new__(BaseGraphQLTransportWSHandler)
        operation = Operation.__new__(Operation)
        operation.id, operation.task, operation.completed = "7", task, False
        handler.operations = {"7": operation}
        assert strawberry_adapter.operation_of_task(handler, task) == ("7", {"id": "7", "type": "next"})
        assert strawberry_adapter.operation_open(handler, "7")
        operation.completed = True
        assert not strawberry_adapter.operation_open(handler, "7")
        legacy = BaseGraphQLWSHandler.__new__(BaseGraphQLWSHandler)
        legacy.tasks = {"8": task}
        assert strawberry_adapter.operation_of_task(legacy, task) == ("8", {"type": "data", "id": "8"})
        assert strawberry_adapter.operation_open(legacy, "8")

    async def test_the_consumers_run_task_is_the_handshakes_until_none(self):
        # strawberry_adapter.running_task / set_running_task: Strawberry's consumer starts
        # with no run_task, and its connect puts the task running the view there.
        consumer = GraphQLWSConsumer(schema=schema)
        assert "run_task" in vars(consumer) and strawberry_adapter.running_task(consumer) is None
        ran = []

        async def run(view):
            ran.append(view)

        consumer.run = run
        await consumer.connect()
        task = strawberry_adapter.running_task(consumer)
        assert isinstance(task, asyncio.Task)
        await task
        assert ran == [consumer]
        strawberry_adapter.set_running_task(consumer, None)
        assert consumer.run_task is None
        # Strawberry's disconnect waits for it; ours does the same through the adapter.
        assert "await self.run_task" in inspect.getsource(GraphQLWSConsumer.disconnect)

    def test_the_graphql_core_schema(self):
        from graphql import GraphQLSchema

        core = strawberry_adapter.graphql_core_schema(schema)
        assert isinstance(core, GraphQLSchema)
        assert core.query_type.name == "Query" and core.get_type("Room") is not None

    def test_info_wraps_graphql_core_resolve_info(self):
        assert "_raw_info" in {f.name for f in dataclasses.fields(Info)}

    def test_execution_context(self):
        assert issubclass(strawberry_adapter.StrawberryGraphQLCoreExecutionContext, Executor)
        # graphql-core's per-event executor, used by the fast path for later events
        assert callable(Executor.build_per_event_executor)

        @strawberry.type
        class Probe:
            ok: bool = True

        default = strawberry.Schema(query=Probe).execution_context_class
        assert default is strawberry_adapter.StrawberryGraphQLCoreExecutionContext


# --- Channels ------------------------------------------------------------------------------


class TestChannels:
    def test_call_assigns_base_send_and_skips_an_unknown_layer(self):
        assigns(AsyncConsumer.__call__, "base_send")
        # The consumer names no layer, so that sockets get no channel of their own.
        assert get_channel_layer(GraphQLConsumer.channel_layer_alias) is None
        consumer = AsyncConsumer()
        consumer.base_send = send = object()
        assert channels_adapter.server_send(consumer) is send

    def test_in_memory_layer_internals(self):
        layer = InMemoryChannelLayer()
        assert isinstance(layer.channels, dict) and isinstance(layer.groups, dict)
        assert callable(layer._clean_expired) and callable(layer.get_capacity)
        assert issubclass(LinearInMemoryChannelLayer, InMemoryChannelLayer)

    def test_redis_layer_internals(self):
        layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379/15"])
        assert layer.hosts[0]["address"] == "redis://127.0.0.1:6379/15"
        assert "index" in inspect.signature(RedisChannelLayer.create_pool).parameters
        assert WaitingRedisChannelLayer(hosts=["redis://127.0.0.1:6379/15"]).create_pool(0).max_connections == 200


# --- daphne ------------------------------------------------------------------------------


class TestDaphne:
    def test_http_connections_send_without_delay(self):
        class Transport:
            no_delay = None

            def setTcpNoDelay(self, enabled):
                self.no_delay = enabled

        request = WebRequest.__new__(WebRequest)
        request.transport = Transport()
        daphne_adapter.send_without_delay(functools.partial(Server.__new__(Server).handle_reply, request))
        assert request.transport.no_delay is True
        daphne_adapter.send_without_delay(lambda message: None)  # not daphne: nothing to do
        # Twisted's TCP connections offer it (ITCPTransport), and daphne hands each HTTP
        # request's application the request itself behind its send.
        assert callable(TCPConnection.setTcpNoDelay)
        assert "partial(self.handle_reply, protocol)" in inspect.getsource(Server.create_application)

    def test_send_is_a_partial_of_handle_reply_over_the_protocol(self):
        assert "partial(self.handle_reply, protocol)" in inspect.getsource(Server.create_application)
        protocol = WebSocketProtocol()
        protocol.transport = None
        send = functools.partial(Server.__new__(Server).handle_reply, protocol)
        assert daphne_adapter.daphne_protocol(send) is protocol
        assert daphne_adapter.daphne_protocol(lambda message: None) is None

    def test_a_websocket_reads_daphnes_input_queue_through_its_get_and_daphne_only_puts(self):
        """What ``daphne_adapter.LightReceive`` relies on: the application's ``receive``
        is the ``get`` of the queue daphne returns from ``create_application``, the
        WebSocket protocol keeps that queue as ``application_queue``, and all it does
        with it is ``put_nowait``."""
        import daphne.ws_protocol

        create = inspect.getsource(Server.create_application)
        assert "input_queue = asyncio.Queue()" in create
        assert "receive=input_queue.get" in create
        assert "return input_queue" in create
        assert "self.application_queue = application_queue" in inspect.getsource(
            WebSocketProtocol.applicationCreateWorked
        )
        uses = re.findall(r"application_queue\.(\w+)", inspect.getsource(daphne.ws_protocol))
        assert uses and set(uses) == {"put_nowait"}, uses

    async def test_a_light_queue_takes_the_place_of_daphnes_at_the_first_receive(self):
        protocol = WebSocketProtocol()
        protocol.transport = None
        send = functools.partial(Server.__new__(Server).handle_reply, protocol)
        daphnes = asyncio.Queue()
        receive = daphne_adapter.light_receive(daphnes.get, send)
        assert isinstance(receive, daphne_adapter.LightReceive)
        # daphne sets its queue on the protocol once the application is made, and queues the connect.
        protocol.application_queue = daphnes
        daphnes.put_nowait({"type": "websocket.connect"})
        daphnes.put_nowait({"type": "websocket.receive", "text": "1"})
        assert await receive() == {"type": "websocket.connect"}
        assert protocol.application_queue is receive and daphnes.empty()
        protocol.application_queue.put_nowait({"type": "websocket.receive", "text": "2"})
        assert await receive() == {"type": "websocket.receive", "text": "1"}
        assert await receive() == {"type": "websocket.receive", "text": "2"}
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        protocol.application_queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
        assert await waiting == {"type": "websocket.disconnect", "code": 1000}

    async def test_a_receive_that_is_not_daphnes_queue_stays(self):
        protocol = WebSocketProtocol()
        protocol.transport = None
        send = functools.partial(Server.__new__(Server).handle_reply, protocol)
        queue = asyncio.Queue()
        assert daphne_adapter.light_receive(queue.get, lambda message: None) == queue.get  # not daphne's send
        assert daphne_adapter.light_receive(queue.get_nowait, send) == queue.get_nowait  # not its get
        # Wired otherwise than daphne does (another queue on the protocol): it keeps reading its own.
        receive = daphne_adapter.light_receive(queue.get, send)
        protocol.application_queue = other = asyncio.Queue()
        queue.put_nowait({"type": "websocket.connect"})
        assert await receive() == {"type": "websocket.connect"}
        assert protocol.application_queue is other

    async def test_the_entry_gives_websockets_the_light_receive(self):
        protocol = WebSocketProtocol()
        protocol.transport = None
        send = functools.partial(Server.__new__(Server).handle_reply, protocol)
        received = []

        async def websocket(scope, receive, send):
            received.append(receive)

        async def http(scope, receive, send):
            received.append(receive)

        gate = drain.DrainGate(http=http, websocket=websocket)
        queue = asyncio.Queue()
        await gate({"type": "websocket"}, queue.get, send)
        await gate({"type": "http"}, queue.get, send)
        assert isinstance(received[0], daphne_adapter.LightReceive)
        assert received[1] == queue.get

    def test_an_http_request_reaches_its_connection(self):
        """HTTP subscription streams (schema/live/http_stream.py) find daphne's request
        behind the ``send`` kept in the scope, and its connection's unsent bytes."""
        tcp = FileDescriptor.__new__(FileDescriptor)
        FileDescriptor.__init__(tcp, reactor=object())
        tcp.dataBuffer, tcp.offset = b"x" * 50, 10

        class Channel:
            transport = tcp

            def getPeer(self):  # Twisted's names
                return None

            def getHost(self):
                return None

            class factory:  # daphne reads channel.factory.server
                class server:
                    @staticmethod
                    def protocol_connected(protocol):
                        pass

        request = WebRequest(Channel(), queued=False)
        send = functools.partial(Server.__new__(Server).handle_reply, request)
        scope_request = types.SimpleNamespace(scope={http_stream.SEND_SCOPE_KEY: send})
        assert http_stream._daphne_request(scope_request) is request
        assert twisted_adapter.unsent_bytes(request) == 40
        assert http_stream._daphne_request(types.SimpleNamespace(scope={})) is None


# --- autobahn ------------------------------------------------------------------------------


# The protocol options daphne's Server gives its WebSocketFactory (its defaults),
# but no opening handshake timeout: that would start a timer on the reactor.
DAPHNE_PROTOCOL_OPTIONS = {
    "autoPingTimeout": 30,
    "allowNullOrigin": True,
    "openHandshakeTimeout": 0,
    "maxMessagePayloadSize": 1024 * 1024,
    "maxFramePayloadSize": 1024 * 1024,
}


def open_server_protocol():
    """An autobahn server protocol after a real opening handshake over a fake
    transport: every attribute is the one autobahn itself set."""
    import base64
    import os

    import txaio
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    txaio.use_twisted()
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(**DAPHNE_PROTOCOL_OPTIONS)
    protocol = factory.buildProtocol(None)
    protocol.transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8000), peerAddress=IPv4Address("TCP", "127.0.0.1", 50000)
    )
    protocol.connectionMade()
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.dataReceived(
        "GET /graphql/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert protocol.transport.value().startswith(b"HTTP/1.1 101 "), protocol.transport.value()
    protocol.transport.clear()
    return protocol


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame (clients mask theirs), shorter than 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    return bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def attributes_read(function, parameter: str) -> set[str]:
    """The attributes ``function`` reads on its argument ``parameter``."""
    import ast
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == parameter
    }


# What send_text reads on the protocol, as autobahn leaves it once a socket is open under
# daphne's options: each one a state in which autobahn's sendMessage writes the plain frame.
OPEN_PROTOCOL = {
    "state": WebSocketServerProtocol.STATE_OPEN,
    "_perMessageCompress": None,
    "autoFragmentSize": 0,
    "send_queue": deque(),
    "maskServerFrames": False,
    "trackedTimings": None,
    "maxMessagePayloadSize": 1024 * 1024,
}
TRAFFIC_COUNTERS = (
    "outgoingWebSocketMessages",
    "outgoingWebSocketFrames",
    "outgoingOctetsAppLevel",
    "outgoingOctetsWebSocketLevel",
    "outgoingOctetsWireLevel",
)


class TestAutobahn:
    def test_daphnes_protocol_is_autobahns_sending_path(self):
        # daphne's WebSocketProtocol adds the ASGI side and leaves the frames to autobahn.
        assert issubclass(WebSocketProtocol, WebSocketServerProtocol)
        for name in ("_connectionMade", "sendMessage", "sendFrame", "sendData", "sendCloseFrame", "processData"):
            assert name not in vars(WebSocketProtocol), f"daphne's WebSocketProtocol overrides {name}"
        import daphne.server

        options = inspect.getsource(daphne.server).split("setProtocolOptions(", 1)[1].split(")", 1)[0]
        assert set(re.findall(r"(\w+)=", options)) == set(DAPHNE_PROTOCOL_OPTIONS), "daphne's protocol options"

    def test_an_open_socket_has_what_send_text_reads(self):
        # autobahn sets these itself (connectionMade, the handshake): a rename, or a
        # default that changes, fails here instead of disabling or misleading send_text.
        protocol = open_server_protocol()
        reads = attributes_read(autobahn_adapter.send_text, "protocol")
        assert reads == set(OPEN_PROTOCOL) | {"transport", "trafficStats"}, "update OPEN_PROTOCOL with send_text"
        for name, expected in OPEN_PROTOCOL.items():
            assert name in vars(protocol), f"autobahn no longer sets {name} on an open protocol"
            assert getattr(protocol, name) == expected, f"autobahn's {name} on an open protocol"
        assert type(protocol.send_queue) is deque
        stats = vars(protocol.trafficStats)
        assert {name: stats.get(name) for name in TRAFFIC_COUNTERS} == dict.fromkeys(TRAFFIC_COUNTERS, 0)

    def test_autobahns_send_path_still_reads_what_send_text_declines_on(self):
        # Each state send_text leaves to autobahn still changes what autobahn's sendMessage does.
        send_path = "".join(
            inspect.getsource(getattr(WebSocketServerProtocol, name))
            for name in ("sendMessage", "sendFrame", "sendData")
        )
        for name in set(OPEN_PROTOCOL) - {"state"}:
            assert f"self.{name}" in send_path, f"autobahn's send path no longer reads {name}"
        assert "self.transport.write(" in send_path

    @pytest.mark.parametrize("size", [0, 5, 125, 126, 200, 65535, 65536, 70000])
    def test_a_text_frame_written_straight_is_autobahns_own(self, size):
        # send_text writes what autobahn's sendMessage would, byte for byte, and counts
        # it the same: for each payload length class of RFC 6455.
        import os

        ours, autobahns = open_server_protocol(), open_server_protocol()
        payload = os.urandom(size)
        autobahns.sendMessage(payload)
        assert autobahn_adapter.send_text(ours, payload)
        assert ours.transport.value() == autobahns.transport.value()
        assert vars(ours.trafficStats) == vars(autobahns.trafficStats)

        # Anything autobahn would do differently is left to autobahn.
        for name, value in [
            ("state", WebSocketServerProtocol.STATE_CLOSING),
            ("_perMessageCompress", object()),
            ("autoFragmentSize", 4),
            ("send_queue", deque([(b"x", False)])),
            ("maskServerFrames", True),
            ("trackedTimings", object()),
            ("maxMessagePayloadSize", 1),
        ]:
            other = open_server_protocol()
            setattr(other, name, value)
            if name != "maxMessagePayloadSize" or size > 1:
                assert not autobahn_adapter.send_text(other, payload), name
                assert other.transport.value() == b"", name

    @pytest.mark.parametrize("name, value", [("autoFragmentSize", 2), ("maskServerFrames", True)])
    def test_autobahn_writes_another_frame_in_the_states_send_text_declines(self, name, value):
        ours, autobahns = open_server_protocol(), open_server_protocol()
        setattr(autobahns, name, value)
        autobahns.sendMessage(b"hello")
        assert autobahn_adapter.send_text(ours, b"hello")
        assert autobahns.transport.value() != ours.transport.value()

    def test_the_frame_debug_arguments_are_plain(self):
        import autobahn.twisted.websocket as twisted_websocket
        import autobahn.websocket.protocol as websocket_protocol

        from schema.live import consumer  # noqa: F401 - the consumer's import makes them plain

        # autobahn still builds its per-frame debug line's arguments with these names.
        assert "hltype(self.sendData)" in inspect.getsource(websocket_protocol.WebSocketProtocol.sendData)
        assert "hlval(" in inspect.getsource(websocket_protocol.WebSocketProtocol.sendData)
        for module in (websocket_protocol, twisted_websocket):
            assert module.hltype(module) is module
            assert module.hlval(42) == 42

    def test_autobahn_replaces_the_frame_mask_at_each_frame_and_ends_frames_with_none(self):
        # autobahn_adapter.forget_frame_mask drops the last frame's mask between frames.
        process = inspect.getsource(WebSocketServerProtocol.processData)
        new_frame = process[process.index("if self.current_frame is None:") :]
        assert "self.current_frame_masker = create_xor_masker(" in new_frame
        assert "self.current_frame_masker = XorMaskerNull()" in new_frame
        assert new_frame.index("self.current_frame_masker = XorMaskerNull()") < new_frame.index(
            "self.current_frame_masker.pointer()"
        )
        assert inspect.getsource(WebSocketServerProtocol.onFrameEnd).rstrip().endswith("self.current_frame = None")

    def test_an_open_socket_keeps_its_last_frames_mask_until_forgotten(self):
        protocol = open_server_protocol()
        protocol.dataReceived(masked_text_frame(b"hello"))
        assert protocol.current_frame is None and protocol.current_frame_masker is not None
        autobahn_adapter.forget_frame_mask(protocol)
        assert protocol.current_frame_masker is None
        protocol.dataReceived(masked_text_frame(b"again"))  # the next frame makes its own
        assert protocol.current_frame_masker is not None

    def test_the_frame_mask_goes_only_between_frames(self):
        between = types.SimpleNamespace(current_frame=None, current_frame_masker=object())
        autobahn_adapter.forget_frame_mask(between)
        assert between.current_frame_masker is None
        mask = object()
        within = types.SimpleNamespace(current_frame=object(), current_frame_masker=mask)
        autobahn_adapter.forget_frame_mask(within)
        assert within.current_frame_masker is mask
        autobahn_adapter.forget_frame_mask(None)  # not under daphne

    def test_a_frame_over_the_limit_closes_with_1009(self):
        protocol = open_server_protocol()
        autobahn_adapter.limit_incoming_frames(protocol, 10)
        protocol.dataReceived(masked_text_frame(b"x" * 11))
        close = protocol.transport.value()
        assert close[0] == 0x88 and close[2:4] == (1009).to_bytes(2, "big"), close  # a close frame, 1009
        assert protocol.state == WebSocketServerProtocol.STATE_CLOSING

    def test_a_close_frame_waits_for_the_reply_as_long_as_set(self, monkeypatch):
        protocol = open_server_protocol()
        assert protocol.closeHandshakeTimeout == 1  # autobahn's default, which daphne keeps
        scheduled = []
        timer = protocol.factory._batched_timer
        monkeypatch.setattr(timer, "call_later", lambda delay, call: scheduled.append((delay, call)))
        autobahn_adapter.close_after(protocol, 7)
        autobahn_adapter.send_close_frame(protocol, 4429, "not reading")
        assert scheduled == [(7, protocol.onCloseHandshakeTimeout)]
        assert "closeHandshakeTimeout" in WebSocketServerProtocol.CONFIG_ATTRS

    def test_autobahn_frame_limit_and_close_frame(self):
        assert issubclass(WebSocketProtocol, WebSocketServerProtocol)
        assert "maxFramePayloadSize" in WebSocketServerProtocol.CONFIG_ATTRS
        assert "failByDrop" in WebSocketServerProtocol.CONFIG_ATTRS
        assert list(inspect.signature(WebSocketServerProtocol.sendCloseFrame).parameters)[1:] == [
            "code",
            "reasonUtf8",
            "isReply",
        ]


# --- Twisted -------------------------------------------------------------------------------


class TestTwisted:
    def test_write_buffers(self):
        descriptor = FileDescriptor.__new__(FileDescriptor)
        FileDescriptor.__init__(descriptor, reactor=object())
        assert descriptor.dataBuffer == b"" and descriptor.offset == 0 and descriptor._tempDataLen == 0
        assigns(TLSMemoryBIOProtocol.makeConnection, "_appSendBuffer")

    @pytest.mark.parametrize("tls", [False, True])
    def test_unsent_bytes_counts_every_buffer(self, tls):
        tcp = FileDescriptor.__new__(FileDescriptor)
        FileDescriptor.__init__(tcp, reactor=object())
        tcp.dataBuffer, tcp.offset, tcp._tempDataLen = b"x" * 100, 40, 7
        transport = tcp
        if tls:
            transport = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)
            transport._appSendBuffer = [b"abc"]
            transport.transport = tcp

        class Protocol:
            pass

        protocol = Protocol()
        protocol.transport = transport
        assert twisted_adapter.unsent_bytes(protocol) == 67 + (3 if tls else 0)

    def test_unsent_bytes_counts_writes_queued_before_any_flush(self):
        # Until the reactor first flushes, dataBuffer and offset are class defaults.
        tcp = FileDescriptor.__new__(FileDescriptor)
        FileDescriptor.__init__(tcp, reactor=object())
        tcp._tempDataBuffer, tcp._tempDataLen = [b"x" * 7], 7
        assert "dataBuffer" not in vars(tcp)
        assert twisted_adapter.unsent_bytes(types.SimpleNamespace(transport=tcp)) == 7

    def test_writes_go_straight_to_the_socket_only_when_nothing_is_queued(self):
        # What write_through() relies on: Twisted's queued write appends to
        # _tempDataBuffer and asks the reactor to watch the socket, and the state it
        # checks first is where it reads it.
        import socket

        from twisted.internet import tcp

        source = inspect.getsource(FileDescriptor.write)
        assert "self._tempDataBuffer.append(data)" in source and "self.startWriting()" in source
        descriptor = FileDescriptor(reactor=object())
        for name in ("dataBuffer", "_tempDataLen", "connected", "disconnecting", "producer", "streamingProducer"):
            assert hasattr(descriptor, name), f"twisted FileDescriptor.{name}"
        for name in ("_writeDisconnecting", "_writeDisconnected"):
            assert hasattr(descriptor, name), f"twisted FileDescriptor.{name}"
        assert tcp.Connection.TLS is False

        twisted_adapter.write_through()  # idempotent (the consumer module installed it)
        assert tcp.Connection.write is twisted_adapter._write

        class Reactor:
            watched = 0

            def addWriter(self, writer):
                self.watched += 1

        ours, peer = socket.socketpair()
        try:
            reactor = Reactor()
            connection = tcp.Connection(ours, protocol=None, reactor=reactor)
            connection.connected = 1
            connection.write(b"frame")
            assert peer.recv(100) == b"frame" and reactor.watched == 0

            # The kernel takes part of a big write: the rest is queued, in order,
            # and so is everything after it until the reactor has sent the queue.
            big = b"x" * (16 << 20)
            connection.write(big)
            queued = connection._tempDataLen
            assert 0 < queued < len(big) and reactor.watched == 1
            connection.write(b"after")
            assert connection._tempDataLen == queued + 5
            assert connection._tempDataBuffer[-1] == b"after"

            # Nothing queued, but TLS, a closing connection or a pull producer: queued too.
            for state in ("TLS", "disconnecting", "producer"):
                other = tcp.Connection(socket.socketpair()[0], protocol=None, reactor=reactor)
                other.connected = 1
                if state == "producer":
                    other.producer, other.streamingProducer = object(), False
                elif state == "TLS":
                    other.TLS, other.protocol = True, types.SimpleNamespace(write=lambda data: None)
                else:
                    setattr(other, state, True)
                other.write(b"frame")
                if state != "TLS":  # under TLS, the TLS protocol takes the bytes
                    assert other._tempDataLen == 5, state
                other.socket.close()
        finally:
            ours.close()
            peer.close()

    def test_daphne_stops_on_sigterm_through_twisteds_handlers(self):
        # The drain (schema/live/drain.py) replaces the SIGTERM handler Twisted
        # installs when the reactor starts: daphne must still let Twisted install
        # them (else SIGTERM would not reach us the same way), and Twisted must
        # install them during startup, before callWhenRunning's callbacks run.
        from twisted.internet import base

        assert "installSignalHandlers=self.signal_handlers" in inspect.getsource(Server.run)
        assert "self._signals.install()" in inspect.getsource(base.ReactorBase._reallyStartRunning)
        assert "addSystemEventTrigger" in inspect.getsource(base.ReactorBase.callWhenRunning)
        for name in ("callWhenRunning", "callFromThread", "stop"):
            assert callable(getattr(base.ReactorBase, name))

    def test_reactor_helpers_do_nothing_without_a_reactor(self, monkeypatch):
        import sys

        monkeypatch.delitem(sys.modules, "twisted.internet.reactor", raising=False)
        called = []
        twisted_adapter.when_running(lambda: called.append(1))
        twisted_adapter.stop_reactor()
        assert called == []


# --- Django --------------------------------------------------------------------------------


class TestDjango:
    """schema/live/django_adapter.py fills a relation's prefetch cache as Django's
    prefetching does; an upgrade that reads it elsewhere fails here."""

    @pytest.fixture
    def message(self, alice):
        from chat.models import Attachment, Message
        from chat.services import rooms

        room = rooms.create_room(alice, "prefetched")
        message = Message.objects.create(room=room, sender=alice, text="with files")
        stored = [
            Attachment.objects.create(
                uploader=alice, message=message, name=f"{n}.txt", content_type="text/plain", size=1
            )
            for n in range(2)
        ]
        return message, stored

    def test_the_relation_answers_the_objects_given_without_a_query(self, message, django_assert_num_queries):
        from chat.models import Attachment

        message, stored = message
        given = [Attachment(id=stored[0].pk, message_id=message.pk, name="from the snapshot")]
        django_adapter.set_prefetched(message, "attachments", Attachment.objects.filter(message_id=message.pk), given)
        with django_assert_num_queries(0):
            assert list(message.attachments.all()) == given
            assert [a.name for a in message.attachments.all()] == ["from the snapshot"]
            assert message.attachments.count() == 1  # counted from the cache too

    def test_a_chained_filter_still_asks_the_database(self, message, django_assert_num_queries):
        from chat.models import Attachment

        message, stored = message
        django_adapter.set_prefetched(message, "attachments", Attachment.objects.filter(message_id=message.pk), [])
        with django_assert_num_queries(1):
            assert list(message.attachments.filter(name="1.txt")) == [stored[1]]

    def test_other_prefetched_relations_stay(self, message):
        from chat.models import Attachment, Message

        message, _ = message
        fetched = Message.objects.prefetch_related("reactions").get(pk=message.pk)
        django_adapter.set_prefetched(fetched, "attachments", Attachment.objects.filter(message_id=message.pk), [])
        assert set(fetched._prefetched_objects_cache) == {"reactions", "attachments"}
