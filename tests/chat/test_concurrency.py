"""Rules that must hold when requests race: real threads, real transactions.

In services mode these run on Postgres (row locks, unique constraints under
READ COMMITTED); in the embedded mode on SQLite (IMMEDIATE transactions).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chat.errors import ChatError
from chat.models import Event, Membership, Message, Reaction, Room
from chat.services import messages, pins, reactions, rooms
from tests.chat_world import fast_user

pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls):
    """Run each call in its own thread, all released at once; return results (or raised ChatErrors)."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            start.wait(timeout=10)
            results[index] = call()
        except ChatError as error:
            results[index] = error
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_simultaneous_direct_chats_give_one_room():
    alice, bob = fast_user("alice"), fast_user("bob")
    results = race(
        lambda: rooms.start_direct_chat(alice, bob.pk),
        lambda: rooms.start_direct_chat(bob, alice.pk),
        lambda: rooms.start_direct_chat(alice, bob.pk),
    )
    assert all(isinstance(r, Room) for r in results), results
    assert len({r.pk for r in results}) == 1
    room = Room.objects.get(kind=Room.Kind.DIRECT)
    assert sorted(Membership.objects.filter(room=room).values_list("user__username", flat=True)) == ["alice", "bob"]
    assert list(Event.objects.filter(room=room).order_by("seq").values_list("seq", "kind")) == [
        (1, "MemberJoined"),
        (2, "MemberJoined"),
    ]


def test_simultaneous_joins_never_exceed_the_room_limit(settings):
    settings.MAX_USERS_IN_ROOM = 4
    owner = fast_user("owner")
    room = rooms.create_room(owner, "Small")
    joiners = [fast_user(f"joiner{i}") for i in range(6)]
    results = race(*[lambda u=u: rooms.join_room(u, room.pk) for u in joiners])
    assert sorted(type(r).__name__ for r in results) == ["Room"] * 3 + ["RoomFull"] * 3, results
    assert Membership.objects.filter(room=room).count() == 4
    # One event per successful join, numbered without gaps.
    assert list(Event.objects.filter(room=room).order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]


def test_retried_send_with_the_same_client_id_stores_one_message():
    alice = fast_user("alice")
    room = rooms.create_room(alice, "Retries")
    results = race(*[lambda: messages.send_message(alice, room.pk, "only once", client_id="retry-1") for _ in range(4)])
    assert all(isinstance(r, Message) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Message.objects.filter(room=room).count() == 1
    assert Event.objects.filter(room=room, kind="MessageAdded").count() == 1


def test_concurrent_senders_get_contiguous_sequence_numbers():
    alice, bob = fast_user("alice"), fast_user("bob")
    room = rooms.create_room(alice, "Busy", member_ids=[bob.pk])
    results = race(
        *[lambda u=u, i=i: messages.send_message(u, room.pk, f"m{i}") for i, u in enumerate([alice, bob] * 3)]
    )
    assert all(isinstance(r, Message) for r in results), results
    seqs = list(Event.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 9))
    assert Room.objects.get(pk=room.pk).last_seq == 8


def test_the_same_reaction_at_once_is_stored_and_announced_once(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "reaction": (1000, 10)}
    alice = fast_user("alice")
    room = rooms.create_room(alice, "lobby")
    message = messages.send_message(alice, room.pk, "hello")
    results = race(*[lambda: reactions.add_reaction(alice, message.pk, "👍")] * 4)
    assert all(isinstance(r, Message) for r in results), results
    assert Reaction.objects.filter(message=message).count() == 1
    assert Event.objects.filter(room=room, kind="ReactionAdded").count() == 1


def test_new_emoji_at_once_stop_at_20(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "reaction": (1000, 10)}
    alice, bob = fast_user("alice"), fast_user("bob")
    room = rooms.create_room(alice, "lobby", member_ids=[bob.pk])
    message = messages.send_message(alice, room.pk, "hello")
    for emoji in ["😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇", "🙂", "🙃", "😉", "😌", "😍", "🥰", "😘"]:
        reactions.add_reaction(alice, message.pk, emoji)
    results = race(*[lambda e=e: reactions.add_reaction(bob, message.pk, e) for e in ["🐶", "🐱", "🐭", "🐹", "🐰"]])
    assert sum(isinstance(r, Message) for r in results) == 3, results
    assert all(isinstance(r, Message) or r.code == "BAD_USER_INPUT" for r in results), results
    assert Reaction.objects.filter(message=message).values("emoji").distinct().count() == 20


def test_pins_at_once_stop_at_the_limit(settings, monkeypatch):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pin": (1000, 60), "send_message": (1000, 10)}
    monkeypatch.setattr(pins, "MAX_PINS_PER_ROOM", 2)
    alice = fast_user("alice")
    room = rooms.create_room(alice, "lobby")
    ids = [messages.send_message(alice, room.pk, f"m{i}").pk for i in range(5)]
    results = race(*[lambda pk=pk: pins.pin_message(alice, pk) for pk in ids])
    assert sum(isinstance(r, Message) for r in results) == 2, results
    assert Message.objects.filter(room=room, pinned_at__isnull=False).count() == 2
    assert Event.objects.filter(room=room, kind="MessagePinned").count() == 2
