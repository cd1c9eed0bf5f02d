"""``GET /metrics``: who may scrape it, and the counters moving while a client
subscribes, sends, resumes and gets refused."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from chat import metrics
from chat.services import rooms as room_services
from tests.clients import GraphQLClient
from tests.schema.test_subscriptions import ROOM_EVENTS, SEND_MESSAGE, connect, events_of, rid, until_listening


def scrape(client=None, **extra) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape from loopback."""
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestAccess:
    def test_loopback_only_without_a_token(self, settings):
        settings.METRICS_TOKEN = ""
        assert Client().get("/metrics").status_code == 200  # the test client is 127.0.0.1
        assert Client().get("/metrics", REMOTE_ADDR="::1").status_code == 200
        refused = Client().get("/metrics", REMOTE_ADDR="203.0.113.7")
        assert refused.status_code == 403
        assert refused.json() == {"error": {"code": "FORBIDDEN", "message": "Not allowed to read the metrics."}}
        # The address is the peer's as daphne reports it, never a header the client sets.
        assert Client().get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403

    def test_bearer_token_when_set(self, settings):
        settings.METRICS_TOKEN = "s3cret-metrics-token"
        outside = {"REMOTE_ADDR": "203.0.113.7"}
        assert Client().get("/metrics", **outside).status_code == 403
        assert Client().get("/metrics").status_code == 403  # loopback needs the token too
        wrong = {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics-tokeN"}
        assert Client().get("/metrics", **outside, **wrong).status_code == 403
        basic = {"HTTP_AUTHORIZATION": "Basic s3cret-metrics-token"}
        assert Client().get("/metrics", **outside, **basic).status_code == 403
        right = {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics-token"}
        response = Client().get("/metrics", **outside, **right)
        assert response.status_code == 200
        assert "chat_open_connections" in response.content.decode()


class TestOperationNames:
    def test_client_names_are_bounded(self, monkeypatch):
        monkeypatch.setattr(metrics, "_names", set())
        monkeypatch.setattr(metrics, "MAX_OPERATION_NAMES", 3)
        assert metrics.operation_label("RoomEvents") == "RoomEvents"
        assert metrics.operation_label(None) == "anonymous"
        assert metrics.operation_label("x" * 65) == "other"
        assert metrics.operation_label("evil name\n") == "other"
        assert metrics.operation_label("B") == "B"
        assert metrics.operation_label("C") == "C"
        assert metrics.operation_label("D") == "other"  # past the cap
        assert metrics.operation_label("B") == "B"  # names seen before keep their label
        assert metrics.protocol_label("graphql-ws") == "graphql-ws"
        assert metrics.protocol_label("made-up") == "other"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_counters_move_while_clients_subscribe_send_and_resume(protocol, alice, bob, settings):
    room = await sync_to_async(room_services.create_room)(alice, "lobby")
    await sync_to_async(room_services.join_room)(bob, room.pk)
    http = GraphQLClient(AsyncClient())
    before = await sync_to_async(scrape)()

    subscriber = await connect(bob, protocol)
    op = await subscriber.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    during = await sync_to_async(scrape)()
    assert (
        value(during, "chat_open_connections", protocol=protocol)
        == value(before, "chat_open_connections", protocol=protocol) + 1
    )
    assert (
        value(during, "chat_open_subscriptions", protocol=protocol)
        == value(before, "chat_open_subscriptions", protocol=protocol) + 1
    )

    for text in ("one", "two", "three"):
        body = await http(SEND_MESSAGE, {"roomId": rid(room), "text": text}, user=alice)
        assert "errors" not in body, body
    events = await events_of(subscriber, op, 3)
    cursor = events[0]["cursor"]
    await subscriber.close()

    # Resume after the first: two events replayed from the table.
    resumed = await connect(bob, protocol)
    op = await resumed.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": cursor})
    assert [e["message"]["text"] for e in await events_of(resumed, op, 2)] == ["two", "three"]
    await resumed.close()

    # A refusal by the rate limit.
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (0, 10)}
    refused = await http(SEND_MESSAGE, {"roomId": rid(room), "text": "too many"}, user=alice)
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    for _ in range(50):  # the sockets' disconnects finish in their own tasks
        after = await sync_to_async(scrape)()
        if value(after, "chat_open_connections", protocol=protocol) == value(
            before, "chat_open_connections", protocol=protocol
        ):
            break
        await asyncio.sleep(0.05)
    for gauge in ("chat_open_connections", "chat_open_subscriptions"):
        assert value(after, gauge, protocol=protocol) == value(before, gauge, protocol=protocol), gauge
    delivered = sum(
        value(after, "chat_deliveries_total", path=p) - value(before, "chat_deliveries_total", path=p)
        for p in ("fast", "stream")
    )
    assert delivered >= 5  # three live, two replayed (presence may add some)
    assert value(after, "chat_replayed_events_total") - value(before, "chat_replayed_events_total") == 2
    assert (
        value(after, "chat_rate_limited_total", action="send_message")
        == value(before, "chat_rate_limited_total", action="send_message") + 1
    )
    send = {"transport": "http", "type": "mutation", "operation": "Send"}
    assert (
        value(after, "chat_operation_duration_seconds_count", **send)
        - value(before, "chat_operation_duration_seconds_count", **send)
        == 4
    )
    assert value(after, "chat_operation_duration_seconds_sum", **send) > value(
        before, "chat_operation_duration_seconds_sum", **send
    )
