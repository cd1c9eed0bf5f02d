from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from chat.errors import ChatError
from chat.models import Attachment, Event, Membership, Message, RefreshToken, Room, User
from chat.services.messages import send_message


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
    model = Membership
    extra = 0
    raw_id_fields = ("user", "last_read_message")
    readonly_fields = ("joined_at", "joined_seq")


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "is_private", "created_by", "created_at", "deleted_at", "last_seq")
    list_filter = ("kind", "is_private", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "topic")
    raw_id_fields = ("created_by",)
    readonly_fields = ("direct_key", "last_seq", "created_at", "updated_at")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("room", "user", "role", "joined_at")
    list_filter = ("role",)
    search_fields = ("room__name", "user__username")
    raw_id_fields = ("room", "user", "last_read_message")
    list_select_related = ("room", "user")


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
    add_form = MessageAddForm

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return self.add_form._meta.fields if obj is None else super().get_fields(request, obj)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # Already stored by send_message during validation: adopt that row.
        obj.pk = form.sent.pk
        obj.refresh_from_db()
        return None

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
    list_display = ("name", "content_type", "size", "uploader", "message", "created_at")
    list_filter = ("content_type", ("message", admin.EmptyFieldListFilter))
    search_fields = ("name", "uploader__username")
    raw_id_fields = ("message", "uploader")
    list_select_related = ("uploader",)


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
