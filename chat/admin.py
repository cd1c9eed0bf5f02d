from asgiref.sync import sync_to_async
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from chat.errors import ChatError, RateLimited
from chat.models import Attachment, Ban, Event, Invite, Membership, Message, RefreshToken, Report, Room, User
from chat.services import accounts, moderation, rooms
from chat.services.messages import delete_message, send_message


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's log-in, under the same throttle as ``tokenAuth`` (per name and
    address, per address; failures shared with the API, since it is the same
    password). The gentle per-account slow-down happens before the form, in
    ``login_view``: here, in the admin's synchronous view, a sleep would hold the
    thread every synchronous request of the process shares."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        address = self.request.META.get("REMOTE_ADDR") if self.request is not None else None
        user = accounts.find_account(username.strip())
        try:
            ok = accounts.check_password_throttled(user, username.strip(), password, address)
        except RateLimited as refused:
            raise forms.ValidationError(
                "Too many failed log-ins. Try again in %(seconds)s seconds.",
                code="throttled",
                params={"seconds": refused.retry_after},
            ) from None
        if not ok:
            raise self.get_invalid_login_error()
        user.backend = "django.contrib.auth.backends.ModelBackend"
        self.user_cache = user
        self.confirm_login_allowed(user)
        return self.cleaned_data


admin.site.login_form = ThrottledAdminLoginForm


async def login_view(request, extra_context=None):
    """The admin's log-in page (routed before the admin's own, backend/urls.py),
    slowed like ``tokenAuth`` once the account has failed often from anywhere: the
    wait is an asyncio sleep, which holds no thread."""
    if request.method == "POST":
        await accounts.wait_login_delay(request.POST.get("username"))
    return await sync_to_async(admin.site.login)(request, extra_context)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "last_seen_at", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("username", "email", "display_name")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Profile", {"fields": ("display_name", "bio", "last_seen_at")}),
    )


class MembershipInline(admin.TabularInline):
    """Members shown with the room; joining, roles and removal go through the API
    (or the membership's own delete, which calls the rooms service)."""

    model = Membership
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("user", "role", "joined_at", "joined_seq", "last_read_message")
    readonly_fields = fields


class RoomChangeForm(forms.ModelForm):
    """Renaming a room, its topic and privacy go through ``update_room`` (same
    validation, a ``RoomUpdated`` event for the members). Set by ``RoomAdmin``."""

    request = None

    class Meta:
        model = Room
        fields = ("name", "topic", "is_private")

    def clean(self):
        data = super().clean()
        if self.errors or not self.has_changed():
            return data
        try:
            rooms.update_room(
                self.request.user,
                self.instance.pk,
                name=data.get("name"),
                topic=data.get("topic"),
                is_private=data.get("is_private"),
            )
        except ChatError as error:
            raise forms.ValidationError(error.message) from None
        return data


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    """Rooms are created through the API; changes and deletion go through the rooms service."""

    form = RoomChangeForm
    list_display = ("name", "kind", "is_private", "created_by", "created_at", "deleted_at", "last_seq")
    list_filter = ("kind", "is_private", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "topic")
    readonly_fields = ("kind", "created_by", "direct_key", "last_seq", "created_at", "updated_at", "deleted_at")
    inlines = [MembershipInline]

    def has_add_permission(self, request):
        return False

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and (obj.kind == Room.Kind.DIRECT or obj.deleted_at is not None):
            return (*self.form.Meta.fields, *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        pass  # written by update_room during validation

    def delete_model(self, request, obj):
        _call_service(request, rooms.delete_room, request.user, obj.pk)

    def delete_queryset(self, request, queryset):
        for room in queryset.filter(deleted_at__isnull=True):
            if not _call_service(request, rooms.delete_room, request.user, room.pk):
                break


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Read-only: memberships change through the API. Deleting one removes the
    member through ``remove_member`` (a ``MemberLeft`` event; never the owner)."""

    list_display = ("room", "user", "role", "joined_at")
    list_filter = ("role",)
    search_fields = ("room__name", "user__username")
    list_select_related = ("room", "user")
    fields = ("room", "user", "role", "joined_at", "joined_seq", "last_read_message", "last_read_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        pass  # every field is read-only

    def delete_model(self, request, obj):
        _call_service(request, rooms.remove_member, request.user, obj.room_id, obj.user_id)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            if not _call_service(request, rooms.remove_member, request.user, membership.room_id, membership.user_id):
                break


def _call_service(request, service, *args) -> bool:
    """Run a service for an admin action; a refusal is shown to the staff member
    as the API would word it, and nothing is written."""
    try:
        service(*args)
    except ChatError as error:
        messages.error(request, error.message)
        return False
    return True


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ("name", "content_type", "size", "width", "height", "uploader", "created_at")
    readonly_fields = fields
    can_delete = False


class MessageAddForm(forms.ModelForm):
    """Adding a message in the admin sends it like any client would (``send_message``):
    same rules, same event for subscribers. The sender must be a member of the room."""

    class Meta:
        model = Message
        fields = ("room", "sender", "text", "client_id", "reply_to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sender"].required = True

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.sent = send_message(
                data.get("sender"),
                data["room"].pk,
                data.get("text", ""),
                client_id=data.get("client_id") or None,
                reply_to_id=data["reply_to"].pk if data.get("reply_to") else None,
            )
        except ChatError as error:
            raise forms.ValidationError(error.message) from None
        return data


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Adding sends through ``send_message``; an existing message is read-only
    (only its sender edits it, through the API), and deleting one is the soft
    delete of ``delete_message``: text and files go, a tombstone event goes out."""

    add_form = MessageAddForm

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return self.add_form._meta.fields if obj is None else self.change_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.change_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return None  # every field is read-only
        # Already stored by send_message during validation: adopt that row.
        obj.pk = form.sent.pk
        obj.refresh_from_db()
        return None

    def delete_model(self, request, obj):
        _call_service(request, delete_message, request.user, obj.pk)

    def delete_queryset(self, request, queryset):
        for message in queryset.filter(deleted_at__isnull=True):
            if not _call_service(request, delete_message, request.user, message.pk):
                break

    change_fields = ("room", "sender", "text", "client_id", "reply_to", "created_at", "edited_at", "deleted_at")
    list_display = ("id", "room", "sender", "short_text", "created_at", "edited_at", "deleted_at")
    list_filter = (("deleted_at", admin.EmptyFieldListFilter), "room__kind", "created_at")
    search_fields = ("text", "sender__username", "room__name")
    raw_id_fields = ("room", "sender", "reply_to")
    list_select_related = ("room", "sender")
    date_hierarchy = "created_at"
    inlines = [AttachmentInline]

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text[:80]


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Read-only: files are attached by sending and go when their message is deleted."""

    list_display = ("name", "content_type", "size", "uploader", "message", "created_at")
    list_filter = ("content_type", ("message", admin.EmptyFieldListFilter))
    search_fields = ("name", "uploader__username")
    list_select_related = ("uploader",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "kind", "actor", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("room__name",)
    raw_id_fields = ("room", "actor")
    list_select_related = ("room", "actor")
    readonly_fields = ("room", "seq", "kind", "payload", "actor", "created_at")

    def has_add_permission(self, request):
        return False  # the event log is written by services only

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "family", "created_at", "expires_at", "used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("used_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username",)
    raw_id_fields = ("user",)
    readonly_fields = ("user", "token_hash", "family", "created_at", "expires_at", "used_at")

    def has_add_permission(self, request):
        return False


# --- Moderation: staff see every room's reports, bans and invites -----------------------


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "reason", "reporter", "short_text", "created_at", "resolved_at", "resolved_by")
    list_filter = ("reason", ("resolved_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("text_snapshot", "comment", "reporter__username", "room__name")
    list_select_related = ("room", "reporter", "resolved_by")
    readonly_fields = (
        "room",
        "message",
        "reporter",
        "reason",
        "comment",
        "text_snapshot",
        "created_at",
        "resolved_at",
        "resolved_by",
    )
    actions = ["resolve"]

    @admin.display(description="reported text")
    def short_text(self, obj):
        return obj.text_snapshot[:80]

    @admin.action(description="Resolve the selected reports")
    def resolve(self, request, queryset):
        for report in queryset.filter(resolved_at__isnull=True):
            moderation.resolve_report(request.user, report.pk)

    def has_add_permission(self, request):
        return False  # members report through the API (reportMessage)


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    list_display = ("room", "user", "banned_by", "reason", "created_at")
    search_fields = ("room__name", "user__username", "reason")
    list_select_related = ("room", "user", "banned_by")
    readonly_fields = ("room", "user", "banned_by", "reason", "created_at")

    def has_add_permission(self, request):
        return False  # through banMember, which removes the member with its event


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("room", "created_by", "created_at", "expires_at", "uses", "max_uses", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("room__name",)
    list_select_related = ("room", "created_by")
    readonly_fields = ("code", "room", "created_by", "created_at", "expires_at", "uses", "max_uses", "revoked_at")

    def has_add_permission(self, request):
        return False
