"""Rate limits on every write that fans out to a room, through the GraphQL API.

Each such write costs a frame on every member's socket, so one account looping
over edits or join/leave cycles must be refused (``RATE_LIMITED`` with
``retryAfter``), and a refused call changes nothing.
"""

from __future__ import annotations

import pytest

from chat.models import Event
from tests.chat_world import World, db_state, gid

EDIT_MESSAGE = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { text } }"
DELETE_MESSAGE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { isDeleted } }"
SEND_MESSAGE = (
    "mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }"
)
JOIN_ROOM = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { id } }"
LEAVE_ROOM = "mutation Leave($roomId: ID!) { leaveRoom(roomId: $roomId) }"
UPDATE_ROOM = "mutation Update($id: ID!, $topic: String) { updateRoom(input: {roomId: $id, topic: $topic}) { topic } }"
MARK_READ = "mutation Read($roomId: ID!, $messageId: ID!) { markRead(roomId: $roomId, messageId: $messageId) { id } }"


def error_code(body: dict) -> str | None:
    return body["errors"][0]["extensions"]["code"] if body.get("errors") else None


def test_defaults_cover_every_fan_out_write(settings):
    for action in (
        "send_message",
        "edit_message",
        "delete_message",
        "membership",
        "manage_room",
        "mark_read",
        "reaction",
        "pin",
        "invite",
        "report",
    ):
        limit, window = settings.RATE_LIMITS[action]
        assert limit > 0 and window > 0, action


@pytest.fixture
def one_window(settings):
    """The default limits in a window this test cannot cross (fixed windows restart
    on the clock; a loaded machine may run a burst across a boundary)."""
    settings.RATE_LIMITS = {action: (limit, 10**6) for action, (limit, _) in settings.RATE_LIMITS.items()}


def test_forty_quick_edits_are_refused_past_the_limit(gql, world: World, one_window):
    """The attack that was seen: 40 editMessage calls in a burst, none refused."""
    message_id = gid("Message", world.message.pk)
    answers = [gql(EDIT_MESSAGE, {"id": message_id, "text": f"edit {i}"}, user=world.member) for i in range(40)]
    codes = [error_code(body) for body in answers]
    assert codes.count(None) == 20
    assert codes[20:] == ["RATE_LIMITED"] * 20
    assert answers[-1]["errors"][0]["extensions"]["retryAfter"] >= 1
    world.message.refresh_from_db()
    assert world.message.text == "edit 19"
    assert Event.objects.filter(kind=Event.Kind.MESSAGE_EDITED).count() == 20


def test_join_leave_cycles_are_refused_past_the_limit(gql, world: World, one_window):
    """The other one: 15 leave/join cycles in a burst."""
    room_id = gid("Room", world.public.pk)
    codes = []
    for _ in range(15):
        codes.append(error_code(gql(JOIN_ROOM, {"roomId": room_id}, user=world.outsider)))
        codes.append(error_code(gql(LEAVE_ROOM, {"roomId": room_id}, user=world.outsider)))
    assert codes[:10] == [None] * 10
    # Once refused, the join fails and so does the leave that follows (not a member).
    assert codes[10::2] == ["RATE_LIMITED"] * 10
    assert None not in codes[10:]
    assert not world.public.memberships.filter(user=world.outsider).exists()


@pytest.mark.parametrize(
    ("action", "query", "variables", "role"),
    [
        ("edit_message", EDIT_MESSAGE, lambda w: {"id": gid("Message", w.message.pk), "text": "x{n}"}, "member"),
        ("delete_message", DELETE_MESSAGE, lambda w: {"id": gid("Message", w.message.pk)}, "member"),
        ("membership", JOIN_ROOM, lambda w: {"roomId": gid("Room", w.public.pk)}, "outsider"),
        ("manage_room", UPDATE_ROOM, lambda w: {"id": gid("Room", w.public.pk), "topic": "t{n}"}, "owner"),
        ("mark_read", MARK_READ, lambda w: {"roomId": gid("Room", w.public.pk), "messageId": "{msg}"}, "admin"),
        ("send_message", SEND_MESSAGE, lambda w: {"roomId": gid("Room", w.public.pk), "text": "hi {n}"}, "member"),
    ],
)
def test_a_refused_write_changes_nothing(gql, world: World, settings, action, query, variables, role):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, action: (1, 10**6)}
    user = world.user(role)

    def call(n: int, message_pk: int) -> dict:
        values = {
            key: value.format(n=n, msg=gid("Message", message_pk)) if isinstance(value, str) else value
            for key, value in variables(world).items()
        }
        return gql(query, values, user=user)

    first = call(1, world.message.pk)
    assert "errors" not in first, first
    before = db_state()
    refused = call(2, world.owner_message.pk)
    assert error_code(refused) == "RATE_LIMITED"
    assert refused["data"] is None
    assert db_state() == before


def test_limits_are_per_user(gql, world: World, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "edit_message": (1, 10**6)}
    assert "errors" not in gql(EDIT_MESSAGE, {"id": gid("Message", world.message.pk), "text": "a"}, user=world.member)
    mine = gql(EDIT_MESSAGE, {"id": gid("Message", world.owner_message.pk), "text": "b"}, user=world.owner)
    assert "errors" not in mine, mine
