"""The subscription engine without GraphQL: cursors, order, gaps, duplicates,
membership, and the retention of the event log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from chat import cursors, events, realtime
from chat.errors import BadUserInput, NotFound
from chat.models import Event, Membership, Message
from chat.services import presence
from chat.services import rooms as room_services

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.asynccontextmanager
async def process():
    """This process's connection to the channel layer (``realtime.Hub``), which the
    streams opened inside share."""
    yield realtime.hub()


class Stream:
    """Runs ``realtime.room_events`` in a task and collects what it delivers."""

    def __init__(self, user, **kwargs):
        self.generator = realtime.room_events(user, **kwargs)
        self.delivered: list[realtime.Delivery] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        async for delivery in self.generator:
            self.delivered.append(delivery)

    async def wait_for(self, n: int, timeout: float = 5) -> list[realtime.Delivery]:
        for _ in range(int(timeout / 0.02)):
            if len(self.delivered) >= n or self.task.done():
                break
            await asyncio.sleep(0.02)
        if self.task.done() and self.task.exception():
            raise self.task.exception()
        assert len(self.delivered) >= n, self.delivered
        return self.delivered[:n]

    async def close(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def record(room_id: int, text: str, actor=None, publish: bool = True) -> dict:
    """A MessageAdded recorded the way services do (lock, event, publish on commit)."""
    with transaction.atomic():
        room = events.lock_room(room_id)
        message = Message.objects.create(room=room, sender=actor, text=text)
        event = events.record_event(
            room, Event.Kind.MESSAGE_ADDED, {"message": events.message_snapshot(message)}, actor=actor
        )
        if not publish:
            transaction.get_connection().run_on_commit = []
    return events.event_message(event)


async def settle():
    await asyncio.sleep(0.2)


class TestCursors:
    def test_round_trip(self):
        cursor = cursors.encode_cursor({12: 7, 3: 40})
        assert cursor.startswith("r1.")
        assert cursors.decode_cursor(cursor) == {3: 40, 12: 7}
        assert cursors.decode_cursor(cursors.encode_cursor({})) == {}

    @pytest.mark.parametrize(
        ("positions", "room", "seq"),
        [({5: 1}, 5, 2), ({5: 1}, 6, 9), ({}, 5, 1), ({12: 7, 3: 40}, 3, 41), ({12: 7, 3: 40}, 4, 1)],
    )
    def test_the_cursor_after_an_event_moves_one_room_and_keeps_the_others(self, positions, room, seq):
        before = dict(positions)
        cursor = cursors.cursor_with(positions, room, seq)
        assert cursors.decode_cursor(cursor) == {**before, room: seq}
        assert cursor == cursors.encode_cursor({**before, room: seq})
        assert positions == before  # the subscription's own positions move only once it is delivered

    @pytest.mark.parametrize(
        "cursor", ["", "r1", "r2.MzoxMA", "r1.!!!", "r1.bm90IGEgY3Vyc29y", "r1.LTE6Mw", "42", "r1.MzotMQ"]
    )
    def test_garbage_is_bad_user_input(self, cursor):
        with pytest.raises(BadUserInput):
            cursors.decode_cursor(cursor)


class TestEngine:
    async def test_live_events_in_order(self, room, alice, bob):
        async with process():
            stream = Stream(bob, room_id=room.pk)
            await settle()
            for text in ("a", "b"):
                await sync_to_async(record)(room.pk, text, alice)
            first, second = await stream.wait_for(2)
            assert (first.seq, second.seq) == (3, 4)
            assert cursors.decode_cursor(second.cursor) == {room.pk: 4}
            await stream.close()

    async def test_a_gap_is_filled_from_the_table_and_duplicates_are_dropped(self, room, alice, bob):
        async with process():
            stream = Stream(bob)
            await settle()
            await sync_to_async(record)(room.pk, "quiet 1", alice, publish=False)
            await sync_to_async(record)(room.pk, "quiet 2", alice, publish=False)
            third = await sync_to_async(record)(room.pk, "loud", alice)
            delivered = await stream.wait_for(3)
            assert [d.message["payload"]["message"]["text"] for d in delivered] == ["quiet 1", "quiet 2", "loud"]
            await get_channel_layer().group_send(f"room.{room.pk}", third)  # again
            await settle()
            assert len(stream.delivered) == 3
            await stream.close()

    async def test_resume_from_a_cursor_then_live(self, room, alice, bob):
        cursor = cursors.encode_cursor({room.pk: 2})
        for text in ("x", "y"):
            await sync_to_async(record)(room.pk, text, alice)
        async with process():
            stream = Stream(bob, after=cursor)
            await stream.wait_for(2)
            await sync_to_async(record)(room.pk, "z", alice)
            delivered = await stream.wait_for(3)
            assert [d.seq for d in delivered] == [3, 4, 5]
            await stream.close()

    async def test_replay_never_starts_before_the_join(self, room, alice, bob, carol):
        await sync_to_async(record)(room.pk, "before carol", alice)
        await sync_to_async(room_services.join_room)(carol, room.pk)
        joined_seq = await sync_to_async(lambda: Membership.objects.get(room=room, user=carol).joined_seq)()
        async with process():
            stream = Stream(carol, after=cursors.encode_cursor({room.pk: 0}))
            [first] = await stream.wait_for(1)
            assert first.seq == joined_seq and first.kind == "MemberJoined"
            await settle()
            assert len(stream.delivered) == 1
            await stream.close()

    async def test_own_leave_is_the_last_event_someone_elses_is_not(self, room, alice, bob, carol):
        await sync_to_async(room_services.join_room)(carol, room.pk)
        async with process() as hub:
            stream = Stream(bob)
            await settle()
            await sync_to_async(room_services.leave_room)(carol, room.pk)
            await sync_to_async(room_services.leave_room)(bob, room.pk)
            await sync_to_async(record)(room.pk, "after bob left", alice)
            carol_left, bob_left = await stream.wait_for(2)
            assert carol_left.kind == bob_left.kind == "MemberLeft"
            assert bob_left.message["payload"]["user"]["username"] == "bob"
            await settle()
            assert len(stream.delivered) == 2
            assert cursors.decode_cursor(bob_left.cursor) == {room.pk: bob_left.seq}
            await stream.close()
            assert hub.groups() == set()

    async def test_a_non_member_is_refused(self, room, carol):
        async with process() as hub:
            stream = Stream(carol, room_id=room.pk)
            with pytest.raises(NotFound):
                await stream.wait_for(1)
            assert hub.groups() == set()

    async def test_kinds_filter_what_is_yielded_not_what_is_tracked(self, room, alice, bob):
        async with process():
            stream = Stream(bob, room_id=room.pk, kinds={"MessageAdded"})
            await settle()
            await sync_to_async(room_services.update_room)(alice, room.pk, topic="news")
            await sync_to_async(record)(room.pk, "m", alice)
            [only] = await stream.wait_for(1)
            assert only.kind == "MessageAdded" and only.seq == 4
            await stream.close()

    async def test_one_check_per_interval_for_all_subscriptions_of_the_process(
        self, settings, monkeypatch, room, alice, bob
    ):
        settings.REALTIME_CHECK_INTERVAL = 0.25
        calls = []
        original = realtime._check_snapshot

        def counting(rooms, users):
            calls.append((rooms, users))
            return original(rooms, users)

        monkeypatch.setattr(realtime, "_check_snapshot", counting)
        async with process():
            streams = [Stream(user) for user in (alice, bob, bob)]
            await asyncio.sleep(1.1)
            assert 2 <= len(calls) <= 5  # about one per interval, not one per subscription
            assert calls[-1] == ([room.pk], sorted([alice.pk, bob.pk]))
            # A message whose publication was lost is found by the next check.
            await sync_to_async(record)(room.pk, "unpublished", alice, publish=False)
            for stream in streams:
                [delivered] = await stream.wait_for(1, timeout=3)
                assert delivered.message["payload"]["message"]["text"] == "unpublished"
            for stream in streams:
                await stream.close()

    def test_ends_membership(self, bob):
        left = {"kind": "MemberLeft", "payload": {"user": {"id": bob.pk}}}
        assert realtime.ends_membership(left, bob.pk)
        assert not realtime.ends_membership(left, bob.pk + 1)
        assert realtime.ends_membership({"kind": "RoomDeleted", "payload": {}}, bob.pk)


class TestPruning:
    def test_old_events_go_each_rooms_latest_stays(self, room, alice):
        record(room.pk, "old", alice)
        other = room_services.create_room(alice, "quiet")
        Event.objects.update(created_at=timezone.now() - timedelta(days=40))
        record(room.pk, "new", alice)
        out = StringIO()
        call_command("prune_events", stdout=out)
        assert out.getvalue().strip() == "Deleted 3 event(s) older than 30 days, 0:00:00."
        kept = list(Event.objects.order_by("room_id", "seq").values_list("room_id", "seq"))
        assert kept == [(room.pk, 4), (other.pk, 1)]

    def test_days_option(self, room, alice):
        Event.objects.update(created_at=timezone.now() - timedelta(days=2))
        call_command("prune_events", "--days", "1", stdout=StringIO())
        assert list(Event.objects.values_list("seq", flat=True)) == [2]


class TestPresenceStore:
    def test_counts_sockets_and_forgets_closed_ones(self, alice):
        store = presence.store()
        store.clear()
        assert presence.connect_socket(alice, "a") is True
        assert presence.connect_socket(alice, "b") is False
        assert presence.disconnect_socket(alice, "a") is False
        assert presence.is_online(alice.pk)
        assert presence.disconnect_socket(alice, "b") is True
        assert not presence.is_online(alice.pk)
        alice.refresh_from_db()
        assert alice.last_seen_at is not None

    def test_one_heartbeat_batch_keeps_every_socket_counted(self, settings, alice, bob):
        settings.PRESENCE_TTL = 0.3
        presence.store().clear()
        presence.connect_socket(alice, "a")
        presence.connect_socket(bob, "b")
        before = alice.last_seen_at
        presence.heartbeat_sockets([(alice, "a"), (bob, "b")])
        assert alice.last_seen_at > before and bob.last_seen_at == alice.last_seen_at
        alice.refresh_from_db()
        assert alice.last_seen_at > before
        time.sleep(0.2)
        presence.heartbeat_sockets([(alice, "a")])  # bob's socket misses its beat
        time.sleep(0.2)
        assert presence.is_online(alice.pk)
        assert not presence.is_online(bob.pk)


class TestHeartbeats:
    async def test_the_process_heartbeat_keeps_open_sockets_online_and_forgets_closed_ones(self, settings, alice):
        settings.PRESENCE_TTL = 0.4
        settings.PRESENCE_HEARTBEAT = 0.1
        await sync_to_async(presence.store().clear)()
        beats = presence.Heartbeats()
        await sync_to_async(presence.connect_socket)(alice, "open")
        beats.register("open", alice)
        await asyncio.sleep(1.0)  # well past the TTL: only the heartbeat keeps it
        assert await sync_to_async(presence.is_online)(alice.pk)
        beats.unregister("open")
        await sync_to_async(presence.disconnect_socket)(alice, "open")
        await asyncio.sleep(0.3)
        assert not await sync_to_async(presence.is_online)(alice.pk)
        assert beats.task.done()  # nothing left to beat for: the loop ended


class TestCheckerWakes:
    """The periodic check wakes a subscription for events the previous check saw
    already (not for events still on their way) and for a membership that differed
    twice in a row."""

    def stream(self, user, room_id, position):
        stream = realtime.RoomStream(user=user, room_id=room_id)
        stream.positions[room_id] = position
        return stream

    def woken(self, stream) -> bool:
        woken = stream._queue.qsize() > 0
        while stream._queue.qsize():
            stream._queue._items.popleft()
        return woken

    async def test_an_event_in_flight_wakes_nobody_a_lost_one_wakes_its_subscribers(self, alice, bob):
        checker = realtime.Checker()
        caught_up, behind = self.stream(alice, 7, 3), self.stream(bob, 7, 3)
        joined = {alice.pk: {7}, bob.pk: {7}}
        checker.wake([caught_up, behind], {7: 4}, joined)  # seq 4 just committed
        assert not self.woken(caught_up) and not self.woken(behind)
        caught_up.positions[7] = 4  # delivered meanwhile; bob's copy was lost
        checker.wake([caught_up, behind], {7: 4}, joined)
        assert not self.woken(caught_up)
        assert self.woken(behind)

    async def test_a_membership_that_differs_twice_wakes(self, alice):
        checker = realtime.Checker()
        stream = self.stream(alice, 7, 3)
        checker.wake([stream], {7: 3}, {alice.pk: set()})  # the leave may be on its way
        assert not self.woken(stream)
        checker.wake([stream], {7: 3}, {alice.pk: set()})
        assert self.woken(stream)


class TestReordering:
    """Parallel senders publish out of order: an early event waits a moment for its
    predecessor instead of every subscriber querying the table."""

    async def published_in_reverse(self, room, alice):
        first = await sync_to_async(record)(room.pk, "first", alice, publish=False)
        second = await sync_to_async(record)(room.pk, "second", alice, publish=False)
        layer = get_channel_layer()
        await layer.group_send(events.room_group(room.pk), second)
        await asyncio.sleep(0.05)
        return layer, first

    async def test_the_late_predecessor_is_awaited_not_queried(self, settings, monkeypatch, room, alice, bob):
        settings.REALTIME_REORDER_WAIT = 2
        async with process():
            stream = Stream(bob, room_id=room.pk)
            await settle()
            queries = []
            original = realtime._events_after
            monkeypatch.setattr(realtime, "_events_after", lambda *a: queries.append(a) or original(*a))
            layer, first = await self.published_in_reverse(room, alice)
            assert stream.delivered == []  # the early one waits
            await layer.group_send(events.room_group(room.pk), first)
            delivered = await stream.wait_for(2)
            assert [d.message["payload"]["message"]["text"] for d in delivered] == ["first", "second"]
            assert queries == []
            await stream.close()

    async def test_a_predecessor_that_never_comes_is_filled_from_the_table(self, settings, room, alice, bob):
        settings.REALTIME_REORDER_WAIT = 0.2
        async with process():
            stream = Stream(bob, room_id=room.pk)
            await settle()
            await self.published_in_reverse(room, alice)  # "first" is lost
            delivered = await stream.wait_for(2, timeout=2)
            assert [d.message["payload"]["message"]["text"] for d in delivered] == ["first", "second"]
            await asyncio.sleep(0.3)
            assert len(stream.delivered) == 2
            await stream.close()
