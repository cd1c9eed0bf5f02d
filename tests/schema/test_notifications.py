"""The notification inbox through the API: mentions (@username, @room, @here),
notification levels, the stored inbox and its counts, marking read, the live
subscription carrying the stored id, and deleted messages taking their
notifications with them."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Membership, Message, Notification, NotificationLevel
from chat.services import messages as message_services
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.chat_world import fast_user
from tests.clients import WSClient, token_for

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]

SEND = "mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }"
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"
MARK_ROOM_READ = (
    "mutation MarkRead($roomId: ID!, $messageId: ID!) "
    "{ markRead(roomId: $roomId, messageId: $messageId) { unreadMentionCount } }"
)
INBOX = """
query Inbox($unreadOnly: Boolean, $first: Int, $after: String) {
  notifications(unreadOnly: $unreadOnly, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id kind readAt createdAt by { username } room { id name } message { id text } } }
  }
}
"""
COUNTS = """
query Counts($roomId: ID!) {
  me { unreadNotificationCount }
  room(id: $roomId) { unreadMentionCount notificationLevel }
}
"""
MARK_READ = "mutation Mark($ids: [ID!], $all: Boolean) { markNotificationsRead(ids: $ids, all: $all) }"
SET_LEVEL = (
    "mutation Level($roomId: ID!, $level: NotificationLevel!) "
    "{ setRoomNotificationLevel(roomId: $roomId, level: $level) { id notificationLevel } }"
)
LIVE = """
subscription Live { notifications { id kind readAt by { username } room { id } message { text } } }
"""


def rid(room) -> str:
    return encode_id("Room", room.pk)


def mid(message) -> str:
    return encode_id("Message", message.pk)


def inbox(gql, user, **variables) -> dict:
    body = gql(INBOX, variables, user=user)
    assert "errors" not in body, body
    return body["data"]["notifications"]


def kinds_and_texts(page: dict) -> list[tuple[str, str | None, str]]:
    return [
        (e["node"]["kind"], (e["node"]["message"] or {}).get("text"), e["node"]["by"]["username"])
        for e in page["edges"]
    ]


def counts(gql, user, room) -> dict:
    body = gql(COUNTS, {"roomId": rid(room)}, user=user)
    assert "errors" not in body, body
    return {
        "unread": body["data"]["me"]["unreadNotificationCount"],
        "mentions": body["data"]["room"]["unreadMentionCount"],
        "level": body["data"]["room"]["notificationLevel"],
    }


def send(gql, user, room, text) -> str:
    body = gql(SEND, {"roomId": rid(room), "text": text}, user=user)
    assert "errors" not in body, body
    return body["data"]["sendMessage"]["id"]


def inbox_rows() -> list[tuple]:
    return list(Notification.objects.order_by("pk").values_list("pk", "user_id", "kind", "message_id", "read_at"))


@pytest.fixture
def trio(room, carol):
    """The lobby with alice (owner), bob and carol."""
    room_services.join_room(carol, room.pk)
    return room


class TestMentions:
    def test_a_mention_waits_in_the_inbox_with_its_counts(self, gql, trio, alice, bob, carol):
        assert counts(gql, bob, trio) == {"unread": 0, "mentions": 0, "level": "MENTIONS"}
        send(gql, alice, trio, "hi @BOB, see this")
        send(gql, carol, trio, "me too @bob.")
        page = inbox(gql, bob)
        assert page["totalCount"] == 2
        assert kinds_and_texts(page) == [
            ("MENTIONED", "me too @bob.", "carol"),
            ("MENTIONED", "hi @BOB, see this", "alice"),
        ]
        node = page["edges"][0]["node"]
        assert node["readAt"] is None and node["room"] == {"id": rid(trio), "name": "lobby"}
        assert counts(gql, bob, trio) == {"unread": 2, "mentions": 2, "level": "MENTIONS"}
        assert inbox(gql, carol)["totalCount"] == 0  # nobody mentioned carol
        assert counts(gql, alice, trio)["unread"] == 0

    def test_no_notification_for_mentioning_yourself_nor_non_members(self, gql, room, alice, bob, carol):
        send(gql, alice, room, "note to @alice, ping @carol and @nobody and mail@bob.example")
        assert inbox_rows() == []

    def test_at_room_notifies_every_other_member(self, gql, trio, alice, bob, carol):
        send(gql, bob, trio, "@room lunch?")
        assert kinds_and_texts(inbox(gql, alice)) == [("MENTIONED", "@room lunch?", "bob")]
        assert kinds_and_texts(inbox(gql, carol)) == [("MENTIONED", "@room lunch?", "bob")]
        assert inbox(gql, bob)["totalCount"] == 0

    def test_a_member_named_twice_gets_one_notification(self, gql, trio, alice, bob):
        send(gql, alice, trio, "@bob @room @Bob")
        assert Notification.objects.filter(user=bob).count() == 1

    def test_in_rooms_over_50_members_only_owners_and_admins_notify_everyone(self, gql, trio, alice, bob, carol):
        crowd = [fast_user(f"crowd{n}") for n in range(48)]
        Membership.objects.bulk_create(Membership(room=trio, user=u) for u in crowd)
        assert trio.memberships.count() == 51
        send(gql, bob, trio, "@room @here free pizza")
        assert Message.objects.filter(text="@room @here free pizza").exists()  # sent as plain text
        assert inbox_rows() == []
        send(gql, bob, trio, "but @carol may know")  # a named mention still notifies
        assert Notification.objects.filter(user=carol).count() == 1
        Membership.objects.filter(room=trio, user=bob).update(role=Membership.Role.ADMIN)
        send(gql, bob, trio, "@room from an admin")
        assert Notification.objects.filter(message__text="@room from an admin").count() == 50
        send(gql, alice, trio, "@room from the owner")
        assert Notification.objects.filter(message__text="@room from the owner").count() == 50

    def test_at_room_of_a_member_in_a_room_of_50_notifies(self, gql, trio, alice, bob):
        Membership.objects.bulk_create(Membership(room=trio, user=fast_user(f"crowd{n}")) for n in range(47))
        assert trio.memberships.count() == 50
        send(gql, bob, trio, "@room still small")
        assert Notification.objects.count() == 49


@pytest.mark.django_db(transaction=True)
class TestHere:
    async def test_at_here_notifies_the_members_online_now(self, agql, trio, alice, bob, carol):
        client = WSClient(token=await sync_to_async(token_for)(carol))
        assert (await client.connect())["type"] == "connection_ack"
        try:
            body = await agql(SEND, {"roomId": rid(trio), "text": "@here standup"}, user=alice)
            assert "errors" not in body, body
            rows = await sync_to_async(lambda: list(Notification.objects.values_list("user_id", "kind")))()
            assert rows == [(carol.pk, "MENTIONED")]  # bob has no open socket
        finally:
            await client.close()


class TestLevels:
    def test_levels_choose_what_is_stored(self, gql, trio, alice, bob, carol):
        body = gql(SET_LEVEL, {"roomId": rid(trio), "level": "NONE"}, user=bob)
        assert body["data"]["setRoomNotificationLevel"] == {"id": rid(trio), "notificationLevel": "NONE"}
        body = gql(SET_LEVEL, {"roomId": rid(trio), "level": "ALL"}, user=carol)
        assert body["data"]["setRoomNotificationLevel"]["notificationLevel"] == "ALL"
        send(gql, alice, trio, "hello all")
        send(gql, alice, trio, "@bob @carol and @room")
        assert inbox(gql, bob)["totalCount"] == 0  # NONE stores nothing, mentions included
        assert kinds_and_texts(inbox(gql, carol)) == [
            ("MENTIONED", "@bob @carol and @room", "alice"),
            ("NEW_MESSAGE", "hello all", "alice"),
        ]
        assert counts(gql, carol, trio) == {"unread": 2, "mentions": 1, "level": "ALL"}
        gql(SET_LEVEL, {"roomId": rid(trio), "level": "MENTIONS"}, user=carol)
        send(gql, alice, trio, "quiet now")
        assert inbox(gql, carol)["totalCount"] == 2
        assert counts(gql, carol, trio)["level"] == "MENTIONS"

    def test_non_members_cannot_set_a_level(self, gql, room, alice, carol):
        private = room_services.create_room(alice, "hidden", is_private=True)
        before = list(Membership.objects.values_list("pk", "notification_level"))
        body = gql(SET_LEVEL, {"roomId": rid(room), "level": "ALL"}, user=carol)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = gql(SET_LEVEL, {"roomId": rid(private), "level": "ALL"}, user=carol)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        body = gql(SET_LEVEL, {"roomId": rid(room), "level": "LOUD"}, user=alice)
        assert body["errors"]  # not a NotificationLevel: refused by validation
        assert list(Membership.objects.values_list("pk", "notification_level")) == before
        assert Membership.objects.get(room=room, user=alice).notification_level == NotificationLevel.MENTIONS


class TestInbox:
    def test_unread_only_and_pages_newest_first(self, gql, trio, alice, bob):
        for n in range(3):
            send(gql, alice, trio, f"@bob {n}")
        first = inbox(gql, bob, first=2)
        assert [e["node"]["message"]["text"] for e in first["edges"]] == ["@bob 2", "@bob 1"]
        assert first["pageInfo"]["hasNextPage"]
        rest = inbox(gql, bob, first=2, after=first["pageInfo"]["endCursor"])
        assert [e["node"]["message"]["text"] for e in rest["edges"]] == ["@bob 0"]
        newest = first["edges"][0]["node"]["id"]
        assert gql(MARK_READ, {"ids": [newest]}, user=bob)["data"] == {"markNotificationsRead": 1}
        unread = inbox(gql, bob, unreadOnly=True)
        assert [e["node"]["message"]["text"] for e in unread["edges"]] == ["@bob 1", "@bob 0"]
        assert inbox(gql, bob)["edges"][0]["node"]["readAt"] is not None

    def test_mark_read_by_ids_and_all_counts_what_changed(self, gql, trio, alice, bob):
        for n in range(3):
            send(gql, alice, trio, f"@bob {n}")
        ids = [e["node"]["id"] for e in inbox(gql, bob)["edges"]]
        assert gql(MARK_READ, {"ids": ids[:2]}, user=bob)["data"]["markNotificationsRead"] == 2
        assert gql(MARK_READ, {"ids": ids[:2]}, user=bob)["data"]["markNotificationsRead"] == 0
        assert counts(gql, bob, trio) == {"unread": 1, "mentions": 1, "level": "MENTIONS"}
        assert gql(MARK_READ, {"all": True}, user=bob)["data"]["markNotificationsRead"] == 1
        assert counts(gql, bob, trio) == {"unread": 0, "mentions": 0, "level": "MENTIONS"}

    def test_refusals_change_nothing(self, gql, trio, alice, bob, carol):
        send(gql, alice, trio, "@bob @carol")
        bobs = [e["node"]["id"] for e in inbox(gql, bob)["edges"]]
        carols = [e["node"]["id"] for e in inbox(gql, carol)["edges"]]
        before = inbox_rows()
        cases = [
            ({"ids": carols}, "NOT_FOUND"),  # someone else's
            ({"ids": [*bobs, *carols]}, "NOT_FOUND"),  # one of them someone else's: none is marked
            ({"ids": [mid(Message.objects.first())]}, "NOT_FOUND"),  # not a notification
            ({"ids": ["garbage"]}, "BAD_USER_INPUT"),
            ({}, "BAD_USER_INPUT"),
            ({"ids": [], "all": False}, "BAD_USER_INPUT"),
            ({"ids": [encode_id("Notification", n) for n in range(1, 102)]}, "BAD_USER_INPUT"),
        ]
        for variables, code in cases:
            body = gql(MARK_READ, variables, user=bob)
            assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code, (variables, body)
        assert gql(MARK_READ, {"all": True}, user=None)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert inbox_rows() == before

    def test_others_cannot_read_my_notifications(self, gql, trio, alice, bob, carol):
        send(gql, alice, trio, "@bob secret plan")
        [notification] = inbox(gql, bob)["edges"]
        node = gql("query N($id: ID!) { node(id: $id) { id } }", {"id": notification["node"]["id"]}, user=carol)
        assert node["data"] == {"node": None}
        mine = gql("query N($id: ID!) { node(id: $id) { id } }", {"id": notification["node"]["id"]}, user=bob)
        assert mine["data"] == {"node": {"id": notification["node"]["id"]}}
        assert gql(INBOX, {}, user=None)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    def test_reading_the_room_reads_its_mentions_up_to_that_message(self, gql, trio, alice, bob):
        first = send(gql, alice, trio, "@bob one")
        send(gql, alice, trio, "@bob two")
        body = gql(MARK_ROOM_READ, {"roomId": rid(trio), "messageId": first}, user=bob)
        assert body["data"]["markRead"] == {"unreadMentionCount": 1}
        assert [e["node"]["message"]["text"] for e in inbox(gql, bob, unreadOnly=True)["edges"]] == ["@bob two"]

    def test_leaving_the_room_takes_its_notifications_out_of_the_inbox(self, gql, trio, alice, bob):
        send(gql, alice, trio, "@bob stay")
        room_services.leave_room(bob, trio.pk)
        assert inbox(gql, bob)["totalCount"] == 0
        assert gql("{ me { unreadNotificationCount } }", user=bob)["data"]["me"]["unreadNotificationCount"] == 0

    def test_the_count_is_for_me_only(self, gql, trio, alice, bob):
        send(gql, alice, trio, "@bob hi")
        query = "query U($id: ID!) { user(id: $id) { unreadNotificationCount } }"
        other = gql(query, {"id": encode_id("User", bob.pk)}, user=alice)
        assert other["data"] == {"user": {"unreadNotificationCount": None}}
        own = gql(query, {"id": encode_id("User", bob.pk)}, user=bob)
        assert own["data"] == {"user": {"unreadNotificationCount": 1}}


class TestDeletedMessages:
    def test_deleting_a_message_deletes_its_notifications(self, gql, trio, alice, bob, carol):
        gql(SET_LEVEL, {"roomId": rid(trio), "level": "ALL"}, user=carol)
        gone = send(gql, alice, trio, "@bob the password is hunter2")
        send(gql, alice, trio, "@bob keep this")
        assert Notification.objects.count() == 4
        assert gql(DELETE, {"id": gone}, user=alice)["data"]["deleteMessage"]["id"] == gone
        assert kinds_and_texts(inbox(gql, bob)) == [("MENTIONED", "@bob keep this", "alice")]
        assert kinds_and_texts(inbox(gql, carol)) == [("NEW_MESSAGE", "@bob keep this", "alice")]
        assert counts(gql, bob, trio)["unread"] == 1
        assert not Notification.objects.filter(message__text__contains="hunter2").exists()
        assert Notification.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestLive:
    async def test_the_live_notification_carries_the_stored_id(self, protocol, agql, trio, alice, bob):
        client = WSClient(token=await sync_to_async(token_for)(bob), protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        try:
            op = await client.subscribe(LIVE)
            from tests.schema.test_subscriptions import until_listening

            await until_listening(f"user.{bob.pk}")
            body = await agql(SEND, {"roomId": rid(trio), "text": "psst @bob"}, user=alice)
            assert "errors" not in body, body
            live = (await client.next(op))["data"]["notifications"]
            stored = await sync_to_async(Notification.objects.get)(user=bob)
            assert live == {
                "id": encode_id("Notification", stored.pk),
                "kind": "MENTIONED",
                "readAt": None,
                "by": {"username": "alice"},
                "room": {"id": rid(trio)},
                "message": {"text": "psst @bob"},
            }
            marked = await agql(MARK_READ, {"ids": [live["id"]]}, user=bob)
            assert marked == {"data": {"markNotificationsRead": 1}}
            assert await client.nothing(0.3)
        finally:
            await client.close()

    async def test_offline_when_mentioned_finds_it_when_back(self, protocol, agql, trio, alice, bob):
        body = await agql(SEND, {"roomId": rid(trio), "text": "while you were out @bob"}, user=alice)
        assert "errors" not in body, body
        # Back: a socket with the live subscription (the mention is not re-sent
        # live) and the inbox with its counts.
        client = WSClient(token=await sync_to_async(token_for)(bob), protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        try:
            await client.subscribe(LIVE)
            found = await agql(INBOX, {"unreadOnly": True}, user=bob)
            [edge] = found["data"]["notifications"]["edges"]
            assert edge["node"]["kind"] == "MENTIONED"
            assert edge["node"]["message"]["text"] == "while you were out @bob"
            got = await agql(COUNTS, {"roomId": rid(trio)}, user=bob)
            assert got["data"] == {
                "me": {"unreadNotificationCount": 1},
                "room": {"unreadMentionCount": 1, "notificationLevel": "MENTIONS"},
            }
            assert await client.nothing(0.3)
        finally:
            await client.close()


def test_direct_chats_and_additions_are_stored_too(gql, alice, bob):
    private = room_services.create_room(alice, "private", is_private=True, member_ids=[bob.pk])
    room_services.start_direct_chat(alice, bob.pk)
    page = inbox(gql, bob)
    assert [(e["node"]["kind"], e["node"]["message"]) for e in page["edges"]] == [
        ("DIRECT_CHAT_STARTED", None),
        ("ADDED_TO_ROOM", None),
    ]
    assert page["edges"][1]["node"]["room"]["name"] == private.name
    message_services.send_message(bob, private.pk, "thanks @alice")
    assert inbox(gql, alice)["totalCount"] == 1
