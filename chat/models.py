"""The data model: users, rooms, memberships, messages, attachments and the event log.

Rules that must hold under concurrency are constraints in the database, not
conventions in code: one direct room per pair of users, one membership per
user and room, one message per (sender, client id), one event per (room, seq).
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone


class ChatUserManager(UserManager):
    def get_by_natural_key(self, username):
        # Log-ins are case-insensitive, like the uniqueness of usernames.
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A person who chats. Usernames and emails are unique case-insensitively."""

    email = models.EmailField("email address", blank=True)
    display_name = models.CharField(max_length=64, blank=True, help_text="Name shown to other users.")
    bio = models.TextField(max_length=500, blank=True, help_text="A short text about the user.")
    avatar = models.ForeignKey(
        "Avatar", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The profile picture."
    )
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="When the user was last connected.")
    # Bumped on password change, "log out everywhere" and account deletion:
    # every access token carries the version it was issued under.
    token_version = models.PositiveIntegerField(default=0, editable=False)

    objects = ChatUserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="user_email_ci_unique"),
        ]

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def save(self, *args, **kwargs):
        """Save, ending every token of the user when the password changed or the
        account was deactivated, whatever did it: ``changePassword``, the admin,
        ``manage.py changepassword``, any ``set_password()`` then ``save()``.

        ``token_version`` is never written from memory: an admin form loaded
        before a "log out everywhere" would otherwise write the old version back
        and bring the revoked tokens back to life. Only ``revoke_all_tokens``
        changes it, with an increment in the database.
        """
        if self._state.adding:
            return super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            update_fields = [f.name for f in self._meta.concrete_fields if not f.primary_key]
        kwargs["update_fields"] = [name for name in update_fields if name != "token_version"]
        password_changed = self._password is not None and "password" in kwargs["update_fields"]
        deactivated = (
            not self.is_active
            and "is_active" in kwargs["update_fields"]
            and User.objects.filter(pk=self.pk, is_active=True).exists()
        )
        if not (password_changed or deactivated):
            return super().save(*args, **kwargs)
        from chat import tokens  # tokens imports this module

        with transaction.atomic():
            super().save(*args, **kwargs)
            tokens.revoke_all_tokens(self)
        return None


class RefreshToken(models.Model):
    """A long-lived refresh token, stored hashed. Single use: refreshing rotates it
    within its family; presenting a rotated token again revokes the whole family."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    family = models.UUIDField(default=uuid.uuid4, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="refresh_user_revoked_idx")]

    def __str__(self) -> str:
        return f"refresh token {self.pk} of {self.user_id}"


class Room(models.Model):
    """A place where messages are exchanged: a group room (public or private) or a
    one-to-one direct chat."""

    class Kind(models.TextChoices):
        GROUP = "group", "Group"
        DIRECT = "direct", "Direct"

    name = models.CharField(max_length=100)
    topic = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.GROUP)
    is_private = models.BooleanField(default=False, help_text="Private rooms are joined by invitation only.")
    # "<lower user id>:<higher user id>" for direct rooms, null otherwise.
    direct_key = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001 - NULL keeps the unique constraint to direct rooms
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="rooms")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Sequence number of the room's latest event, assigned under a row lock.
    last_seq = models.BigIntegerField(default=0, editable=False)
    avatar = models.ForeignKey(
        "Avatar", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The room's picture."
    )
    slow_mode_seconds = models.PositiveIntegerField(
        default=0, help_text="Members other than owners and admins may send one message per this many seconds."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["direct_key"], name="room_one_direct_per_pair"),
            # A second public "#general" could impersonate the first.
            models.UniqueConstraint(
                Lower("name"),
                condition=models.Q(kind="group", is_private=False, deleted_at__isnull=True),
                name="room_public_name_ci_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="group", direct_key__isnull=True) | models.Q(kind="direct", is_private=True),
                name="room_direct_key_only_for_direct",
            ),
        ]
        indexes = [models.Index(fields=["is_private", "deleted_at"], name="room_public_idx")]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def direct_key_for(user_a_id: int, user_b_id: int) -> str:
        low, high = sorted((int(user_a_id), int(user_b_id)))
        return f"{low}:{high}"


class NotificationLevel(models.TextChoices):
    """What a member is notified of in a room."""

    ALL = "all", "Every message"
    MENTIONS = "mentions", "Mentions only"
    NONE = "none", "Nothing"


class Membership(models.Model):
    """A user's place in a room, with their role, read position and notification level."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    # Sequence of the room's event at which the user joined: a member resumes
    # and replays events from here on, never from before they joined.
    joined_seq = models.BigIntegerField(default=0)
    last_read_message = models.ForeignKey("Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_read_at = models.DateTimeField(null=True, blank=True)
    notification_level = models.CharField(
        max_length=8,
        choices=NotificationLevel.choices,
        default=NotificationLevel.MENTIONS,
        help_text="Which messages of the room store a notification for this member.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="membership_one_per_user_and_room")]
        indexes = [models.Index(fields=["user", "room"], name="membership_user_room_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id} ({self.role})"


class Message(models.Model):
    """A chat message. Deletion is soft: text and attachments go, a tombstone stays."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    text = models.TextField(blank=True)
    client_id = models.CharField(  # noqa: DJ001 - NULL: no key, not unique
        max_length=64, null=True, blank=True, help_text="Idempotency key chosen by the sender's client."
    )
    reply_to = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies")
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A thread is flat: every reply points at the thread's root (a reply to a
    # reply joins the root's thread). The root keeps its thread's count and
    # latest reply, updated under the room lock with each reply, so that a
    # history page shows them without a query per message.
    reply_count = models.PositiveIntegerField(default=0, editable=False, help_text="Replies not deleted.")
    last_reply_at = models.DateTimeField(null=True, blank=True, editable=False)
    pinned_at = models.DateTimeField(null=True, blank=True)
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_client_id_unique_per_sender",
            )
        ]
        indexes = [
            models.Index(fields=["room", "created_at", "id"], name="message_history_idx"),
            models.Index(fields=["reply_to", "created_at", "id"], name="message_thread_idx"),
            models.Index(
                fields=["room", "pinned_at", "id"], condition=models.Q(pinned_at__isnull=False), name="message_pins_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} in {self.room_id}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Reaction(models.Model):
    """One user's emoji on one message. A user reacts with each emoji at most once."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_one_per_user_and_emoji")
        ]
        indexes = [models.Index(fields=["message", "created_at", "id"], name="reaction_message_idx")]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class MessageEdit(models.Model):
    """A message's text as it was until an edit replaced it (deleted with the message's content)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="edits")
    text = models.TextField()
    edited_at = models.DateTimeField(help_text="When this text was replaced.")

    class Meta:
        ordering = ["edited_at", "id"]
        indexes = [models.Index(fields=["message", "edited_at", "id"], name="message_edit_idx")]

    def __str__(self) -> str:
        return f"edit of {self.message_id} at {self.edited_at}"


def attachment_path(instance: Attachment, filename: str) -> str:
    return f"attachments/{timezone.now():%Y/%m}/{uuid.uuid4().hex}/{filename}"


def thumbnail_path(instance: Attachment, filename: str) -> str:
    return f"thumbnails/{timezone.now():%Y/%m}/{uuid.uuid4().hex}/{filename}"


def avatar_path(instance: Avatar, filename: str) -> str:
    return f"avatars/{timezone.now():%Y/%m}/{uuid.uuid4().hex}/{filename}"


class Avatar(models.Model):
    """A picture of a user or a room: square images re-encoded from an uploaded image,
    one per size in ``SIZES``. Served only through signed URLs, to whoever may see
    the user or room that shows it."""

    SIZES = (64, 256)

    small = models.FileField(upload_to=avatar_path, max_length=255, help_text="64x64 pixels.")
    large = models.FileField(upload_to=avatar_path, max_length=255, help_text="256x256 pixels.")
    content_type = models.CharField(max_length=32, help_text="image/png or image/jpeg.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"avatar {self.pk}"

    def file_for(self, size: int):
        return self.small if size == 64 else self.large


class Attachment(models.Model):
    """A file uploaded by a user, private to the room of the message it is attached to."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=255)
    thumbnail = models.FileField(upload_to=thumbnail_path, max_length=255, blank=True)
    name = models.CharField(max_length=255, help_text="The sanitized original file name.")
    content_type = models.CharField(max_length=100, help_text="The type sniffed from the content.")
    size = models.PositiveBigIntegerField(help_text="Size in bytes.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["message", "created_at"], name="attachment_unattached_idx")]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """The outbox and resume log: one row per change others must see, written in
    the same transaction as the change, numbered per room without gaps."""

    class Kind(models.TextChoices):
        MESSAGE_ADDED = "MessageAdded"
        MESSAGE_EDITED = "MessageEdited"
        MESSAGE_DELETED = "MessageDeleted"
        MEMBER_JOINED = "MemberJoined"
        MEMBER_LEFT = "MemberLeft"
        MEMBER_ROLE_CHANGED = "MemberRoleChanged"
        ROOM_UPDATED = "RoomUpdated"
        ROOM_DELETED = "RoomDeleted"
        READ_RECEIPT = "ReadReceipt"
        REACTION_ADDED = "ReactionAdded"
        REACTION_REMOVED = "ReactionRemoved"
        MESSAGE_PINNED = "MessagePinned"
        MESSAGE_UNPINNED = "MessageUnpinned"
        MEMBER_MUTED = "MemberMuted"
        MEMBER_UNMUTED = "MemberUnmuted"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    payload = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The message whose snapshot the payload carries: deleting or editing that
    # message finds the events to redact through this index (chat/redaction.py).
    message = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "seq"], name="event_one_per_room_and_seq")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.seq} in {self.room_id}"


class Notification(models.Model):
    """Something that concerns one user, stored so that it waits for them while
    they are offline (the inbox) and counted until they mark it read."""

    class Kind(models.TextChoices):
        MENTIONED = "MENTIONED"
        NEW_MESSAGE = "NEW_MESSAGE"
        ADDED_TO_ROOM = "ADDED_TO_ROOM"
        DIRECT_CHAT_STARTED = "DIRECT_CHAT_STARTED"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    # Deleting a message deletes its notifications in the same transaction: a
    # mention of removed text must not outlive it.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_inbox_idx"),
            models.Index(
                fields=["user", "room", "kind"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id} in {self.room_id}"


# --- Moderation ------------------------------------------------------------------------


class Ban(models.Model):
    """A user banned from a room: they cannot come back while it stands."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bans")
    banned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="ban_one_per_user_and_room")]

    def __str__(self) -> str:
        return f"{self.user_id} banned from {self.room_id}"


class Mute(models.Model):
    """A member who may read but not write in a room until ``until`` (null: until unmuted).

    Kept apart from the membership so that leaving and rejoining does not lift it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mutes")
    muted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="mute_one_per_user_and_room")]

    def __str__(self) -> str:
        return f"{self.user_id} muted in {self.room_id}"

    def is_active(self, now=None) -> bool:
        return self.until is None or self.until > (now or timezone.now())


class Block(models.Model):
    """``blocker`` does not want to hear from ``blocked``. Private: the blocked user is never told."""

    blocker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocked_by")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="block_one_per_pair"),
            models.CheckConstraint(condition=~models.Q(blocker=models.F("blocked")), name="block_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Report(models.Model):
    """A member's report of a message, with the text as it was when reported.

    The snapshot is message content: deleting the message redacts it."""

    class Reason(models.TextChoices):
        SPAM = "SPAM", "Spam"
        ABUSE = "ABUSE", "Abuse"
        HARASSMENT = "HARASSMENT", "Harassment"
        OTHER = "OTHER", "Other"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="reports")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    comment = models.TextField(max_length=1000, blank=True)
    text_snapshot = models.TextField(blank=True, help_text="The message text when it was reported.")
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "reporter"],
                condition=models.Q(reporter__isnull=False),
                name="report_one_per_reporter_and_message",
            )
        ]
        indexes = [models.Index(fields=["room", "resolved_at", "created_at"], name="report_open_idx")]

    def __str__(self) -> str:
        return f"report {self.pk} of message {self.message_id}"


def new_invite_code() -> str:
    # 24 random bytes: 192 bits, URL-safe, unguessable.
    return secrets.token_urlsafe(24)


class Invite(models.Model):
    """A link that lets any signed-in user who is not banned join a room (private ones too)."""

    code = models.CharField(max_length=64, unique=True, default=new_invite_code, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="invites")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["room", "created_at"], name="invite_room_idx")]

    def __str__(self) -> str:
        return f"invite to {self.room_id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and (self.max_uses is None or self.uses < self.max_uses)
        )
