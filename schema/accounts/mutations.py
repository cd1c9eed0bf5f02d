"""Account mutations: the django-graphql-jwt contract (``tokenAuth``, ``verifyToken``,
``refreshToken``, ``revokeToken``) plus registration, profile, password, account
deletion and ``revokeAllTokens`` ("log out everywhere").

Arguments are nullable in the schema on purpose: a missing or blank value is
answered by the service as ``BAD_USER_INPUT`` naming the field in
``extensions.fields``, like every other invalid value, instead of a GraphQL
validation error without a code. Clients declaring ``String!`` variables work
unchanged.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from asgiref.sync import sync_to_async
from strawberry import relay
from strawberry.types import Info

from chat.services import accounts
from schema.accounts.types import AuthPayload, DeleteAccountPayload, RevokeTokenPayload, UserType, VerifyTokenPayload
from schema.context import signed_in_user
from schema.global_ids import upload_id


def client_address(info: Info) -> str | None:
    """The caller's network address for throttling: ``REMOTE_ADDR`` over HTTP, the
    ASGI ``client`` over WebSocket. Behind a proxy this is the proxy's address
    unless the server is told to trust a forwarded header (see README)."""
    request = info.context.request
    meta = getattr(request, "META", None)
    if meta is not None:
        return meta.get("REMOTE_ADDR")
    client = (getattr(request, "scope", None) or {}).get("client")
    return str(client[0]) if client else None


@strawberry.input
class RegisterInput:
    username: str | None = strawberry.field(
        default=None, description="Required. Letters, digits and . + - _; unique case-insensitively."
    )
    email: str | None = strawberry.field(default=None, description="Required. Unique case-insensitively.")
    password: str | None = strawberry.field(
        default=None, description="Required. Checked by the server's password validators (length, common, similarity)."
    )
    display_name: str | None = strawberry.field(default=None, description="Optional name to show to others.")


@strawberry.input
class UpdateProfileInput:
    display_name: str | None = strawberry.field(default=None, description="New display name; empty clears it.")
    bio: str | None = strawberry.field(default=None, description="New bio; empty clears it.")
    email: str | None = strawberry.field(default=None, description="New email address.")
    avatar_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "Your profile picture: the ID of an image you uploaded (`uploadAttachment` or `POST /api/uploads/`) and "
            "have not attached to a message. It is cropped square and re-encoded, and the upload is used up. "
            "`null` removes the picture; leave it out to keep it. Someone else's or an attached upload is "
            "BAD_USER_INPUT; a file that is not an image, UNSUPPORTED_MEDIA_TYPE."
        ),
    )


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create an account and sign it in. Limited per client address.")
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        issued = await sync_to_async(accounts.register_user)(
            username=input.username,
            email=input.email,
            password=input.password,
            display_name=input.display_name,
            client_address=client_address(info),
        )
        info.context.sign_in(issued.user)
        return AuthPayload.from_issued(issued)

    @strawberry.mutation(
        description="Log in with a username or an email address and a password. Unknown user and wrong "
        "password answer the same `BAD_USER_INPUT`; repeated failures for one name from one address (or many "
        "from one address) answer `RATE_LIMITED` with `extensions.retryAfter` (seconds). An account is never "
        "locked: failures from elsewhere only slow its log-ins a little."
    )
    async def token_auth(
        self,
        info: Info,
        username: Annotated[str | None, strawberry.argument(description="Username or email address.")] = None,
        password: str | None = None,
    ) -> AuthPayload:
        await accounts.wait_login_delay(username)
        issued = await sync_to_async(accounts.obtain_tokens)(
            username=username, password=password, client_address=client_address(info)
        )
        info.context.sign_in(issued.user)
        return AuthPayload.from_issued(issued)

    @strawberry.mutation(
        description="Check an access token: its claims if it is valid, `UNAUTHENTICATED` if it is expired, "
        "tampered with, revoked or not an access token."
    )
    async def verify_token(self, info: Info, token: str | None = None) -> VerifyTokenPayload:
        user, payload = await sync_to_async(accounts.verify_token)(token)
        return VerifyTokenPayload(payload=payload, user=user)

    @strawberry.mutation(
        description="Exchange a refresh token for a new access token and a new refresh token. Each refresh "
        "token works once: presenting one that was already used revokes every token of its log-in."
    )
    async def refresh_token(self, info: Info, refresh_token: str | None = None) -> AuthPayload:
        issued = await sync_to_async(accounts.refresh_tokens)(refresh_token)
        return AuthPayload.from_issued(issued)

    @strawberry.mutation(description="Revoke one refresh token (log out this device).")
    async def revoke_token(self, info: Info, refresh_token: str | None = None) -> RevokeTokenPayload:
        revoked_at = await sync_to_async(accounts.revoke_token)(refresh_token)
        return RevokeTokenPayload(revoked=int(revoked_at.timestamp()))

    @strawberry.mutation(
        description="Log out everywhere: every access token and refresh token of the signed-in user ends now, "
        "on every device, including the one calling."
    )
    async def revoke_all_tokens(self, info: Info) -> RevokeTokenPayload:
        revoked_at = await sync_to_async(accounts.revoke_all_tokens)(signed_in_user(info))
        return RevokeTokenPayload(revoked=int(revoked_at.timestamp()))

    @strawberry.mutation(
        description="Change the password. Every existing token of the user ends (all devices); the answer "
        "carries a fresh pair for this session."
    )
    async def change_password(
        self, info: Info, old_password: str | None = None, new_password: str | None = None
    ) -> AuthPayload:
        issued = await sync_to_async(accounts.change_password)(
            signed_in_user(info),
            old_password=old_password,
            new_password=new_password,
            client_address=client_address(info),
        )
        return AuthPayload.from_issued(issued)

    @strawberry.mutation(description="Change the signed-in user's profile; omitted fields stay as they are.")
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserType:
        avatar = {} if input.avatar_id is strawberry.UNSET else {"avatar_id": upload_id(input.avatar_id)}
        return await sync_to_async(accounts.update_profile)(
            signed_in_user(info), display_name=input.display_name, bio=input.bio, email=input.email, **avatar
        )

    @strawberry.mutation(
        description="Delete the signed-in user's account, after confirming the password. Their messages "
        "stay, shown as from a deleted user (`sender: null`)."
    )
    async def delete_account(self, info: Info, password: str | None = None) -> DeleteAccountPayload:
        user_id = await sync_to_async(accounts.delete_account)(
            signed_in_user(info), password=password, client_address=client_address(info)
        )
        return DeleteAccountPayload(deleted_id=strawberry.ID(str(relay.GlobalID("User", str(user_id)))))
