"""``manage.py seed_demo``: demo users, rooms and history for a newcomer.

Everything goes through the real services (chat/services), so the rooms have
their event log, unread counts and read receipts like any other. Running it
again changes nothing: users and rooms are looked up by name, and messages
carry a fixed ``client_id`` (the idempotency key of ``send_message``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings

from chat.models import Invite, Membership, Message, Mute, Room, User
from chat.services import messages as message_service
from chat.services import moderation as moderation_service
from chat.services import pins as pin_service
from chat.services import reactions as reaction_service
from chat.services import rooms as room_service

DEMO_PASSWORD = "demo-chat-2026"

USERS = [
    ("alice", "Alice Liddell", "Asks curious questions."),
    ("bob", "Bob Builder", "Can we fix it? Yes we can."),
    ("carol", "Carol Danvers", "Higher, further, faster."),
    ("erin", "Erin Loud", "Muted in #general for shouting (see docs/moderation.md)."),
]

# (name, topic, private, owner, other members)
ROOMS = [
    ("general", "Say hello! Everyone is welcome here.", False, "alice", ["bob", "carol"]),
    ("random", "Off-topic chatter, links and jokes.", False, "bob", ["alice"]),
    ("design", "A private room for the design crew.", True, "carol", ["alice"]),
]

GENERAL_LINES = [
    ("alice", "Good morning everyone!"),
    ("bob", "Morning Alice. Coffee first."),
    ("carol", "Hi both. Did anyone try the new GraphQL explorer at /graphql/?"),
    ("alice", "Yes: the roomEvents subscription streams everything live."),
    ("bob", "And if you lose the connection, pass the last cursor as `after` and nothing is lost."),
    ("carol", "Nice. Typing indicators work too, look at the bottom of the chat."),
    ("alice", "Who is up for lunch at noon?"),
    ("bob", "Me!"),
    ("carol", "Count me in."),
    ("alice", "Great, see you at the usual place."),
]

RANDOM_LINES = [
    ("bob", "Why do programmers prefer dark mode? Because light attracts bugs."),
    ("alice", "Groan."),
    ("bob", "I will be here all week."),
]

DESIGN_LINES = [
    ("carol", "Draft of the new logo is ready for review."),
    ("alice", "Looks great! Maybe a little more contrast on the text?"),
    ("carol", "Good point, I will push an update tomorrow."),
]

DIRECT_LINES = [
    ("alice", "Hey Bob, do you have a minute later today?"),
    ("bob", "Sure, after 3pm works for me."),
]

# Sent after the read positions are set, so alice finds an unread mention in her inbox.
MENTION_LINE = ("random", "bob", "@alice I have another joke for you later.")

# Enough history in #general for the web chat's infinite scroll to have pages.
GENERAL_ROUNDS = 6

# Conversation features on #general's last round: (index in GENERAL_LINES, username, emoji).
REACTIONS = [
    (3, "bob", "🚀"),
    (3, "carol", "🚀"),
    (4, "alice", "👍"),
    (4, "carol", "💯"),
    (7, "alice", "😄"),
]
# Replies in the thread of "Who is up for lunch at noon?".
THREAD_ROOT = 6
THREAD_LINES = [
    ("bob", "Pizza or noodles?"),
    ("carol", "Noodles, please."),
    ("alice", "Noodles it is. Table for three."),
]
# Pinned by #general's owner: the tip about resuming.
PINNED = 4
# An edited message, so that its history shows in the web chat.
EDITED = ("random", 2, "I will be here all week. Try the fish.")


class Command(BaseCommand):
    help = (
        "Create demo users (alice, bob, carol; password "
        f"'{DEMO_PASSWORD}'), rooms and message history. Idempotent: running it again changes nothing."
    )

    def handle(self, *args, **options):
        # Seeding sends many messages at once: the per-user rate limits, which
        # protect the live server from clients, do not apply to this command.
        limits = {
            **settings.RATE_LIMITS,
            **{name: (10**9, 1) for name in ("send_message", "create_room", "reaction", "pin")},
        }
        with override_settings(RATE_LIMITS=limits):
            created = self.seed()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready ({created['users']} users, {created['rooms']} rooms, "
                f"{created['messages']} messages created). Log in as alice, bob or carol "
                f"with the password '{DEMO_PASSWORD}'."
            )
        )
        invite = created["invite"]
        base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        self.stdout.write(
            f"erin is muted in #general. Invite link to the private #design room (5 uses): "
            f"{moderation_service.invite_url(invite, base)}"
        )

    def seed(self) -> dict:
        created = {"users": 0, "rooms": 0, "messages": 0}
        users = {}
        for username, display_name, bio in USERS:
            user = User.objects.filter(username__iexact=username).first()
            if user is None:
                user = User.objects.create_user(
                    username=username,
                    email=f"{username}@example.com",
                    password=DEMO_PASSWORD,
                    display_name=display_name,
                    bio=bio,
                )
                created["users"] += 1
            users[username] = user

        rooms = {}
        for name, topic, private, owner, others in ROOMS:
            room = Room.objects.filter(
                name=name, kind=Room.Kind.GROUP, created_by=users[owner], deleted_at__isnull=True
            ).first()
            if room is None:
                room = room_service.create_room(
                    users[owner],
                    name,
                    topic=topic,
                    is_private=private,
                    member_ids=[users[u].pk for u in others] if private else [],
                )
                created["rooms"] += 1
            if not private:
                for username in others:
                    room_service.join_room(users[username], room.pk)
            rooms[name] = room
        rooms["direct"] = room_service.start_direct_chat(users["alice"], users["bob"].pk)

        general = [line for _ in range(GENERAL_ROUNDS) for line in GENERAL_LINES]
        sent_by_room = {}
        for room_name, lines in (
            ("general", general),
            ("random", RANDOM_LINES),
            ("design", DESIGN_LINES),
            ("direct", DIRECT_LINES),
        ):
            sent = []
            for index, (sender, text) in enumerate(lines):
                client_id = f"seed-demo:{room_name}:{index}"
                existed = Message.objects.filter(sender=users[sender], client_id=client_id).exists()
                message = message_service.send_message(users[sender], rooms[room_name].pk, text, client_id=client_id)
                created["messages"] += 0 if existed else 1
                sent.append(message)
            sent_by_room[room_name] = sent
            # Everyone has read their room up to a few messages from the end,
            # so the room list shows some unread counts.
            with transaction.atomic():
                members = list(Membership.objects.filter(room=rooms[room_name]).select_related("user"))
            for membership in members:
                position = sent[max(0, len(sent) - 1 - (membership.user.pk % 3))]
                message_service.mark_read(membership.user, rooms[room_name].pk, position.pk)
        room_name, sender, text = MENTION_LINE
        client_id = f"seed-demo:{room_name}:mention"
        existed = Message.objects.filter(sender=users[sender], client_id=client_id).exists()
        message_service.send_message(users[sender], rooms[room_name].pk, text, client_id=client_id)
        created["messages"] += 0 if existed else 1
        created["messages"] += self.seed_conversations(users, rooms, sent_by_room)
        created["invite"] = self.seed_moderation(users, rooms)
        return created

    def seed_conversations(self, users: dict, rooms: dict, sent_by_room: dict) -> int:
        """Reactions, a thread, a pin and an edit, all idempotent (reactions and pins by
        their nature, replies by client id, the edit by its text). Returns how many
        replies were created."""
        last_round = sent_by_room["general"][-len(GENERAL_LINES) :]
        for index, username, emoji in REACTIONS:
            reaction_service.add_reaction(users[username], last_round[index].pk, emoji)
        created = 0
        root = last_round[THREAD_ROOT]
        for index, (sender, text) in enumerate(THREAD_LINES):
            client_id = f"seed-demo:thread:{index}"
            created += 0 if Message.objects.filter(sender=users[sender], client_id=client_id).exists() else 1
            message_service.send_message(
                users[sender], rooms["general"].pk, text, client_id=client_id, thread_id=root.pk
            )
        pin_service.pin_message(rooms["general"].created_by, last_round[PINNED].pk)
        room_name, index, text = EDITED
        message = sent_by_room[room_name][index]
        message_service.edit_message(message.sender, message.pk, text)
        return created

    def seed_moderation(self, users: dict, rooms: dict) -> Invite:
        """A muted member (erin in #general) and an invite link to #design, once."""
        general = rooms["general"]
        room_service.join_room(users["erin"], general.pk)
        latest = Message.objects.filter(room=general).order_by("-created_at", "-pk").first()
        message_service.mark_read(users["erin"], general.pk, latest.pk)
        if not Mute.objects.filter(room=general, user=users["erin"]).exists():
            moderation_service.mute_member(users["alice"], general.pk, users["erin"].pk)
        invite = Invite.objects.filter(room=rooms["design"], revoked_at__isnull=True, created_by=users["carol"]).first()
        if invite is None:
            invite = moderation_service.create_invite(users["carol"], rooms["design"].pk, max_uses=5)
        return invite
