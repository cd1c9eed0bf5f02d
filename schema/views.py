"""HTTP transport: Strawberry's async Django view, so Django's middleware and
streaming upload handlers apply. Only the JWT authenticates: a session cookie
(the admin's) never does, which is why /graphql/ needs no CSRF token."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from chat import tokens
from chat.errors import ChatError
from schema.context import ChatContext


async def authenticate(header: str | None):
    """(user, error) for an Authorization header; never raises."""
    try:
        user = await sync_to_async(tokens.user_from_authorization)(header)
    except ChatError as error:
        return AnonymousUser(), error
    return (user or AnonymousUser()), None


@method_decorator(csrf_exempt, name="dispatch")
class GraphQLView(AsyncGraphQLView):
    def __init__(self, **kwargs):
        kwargs.setdefault("graphql_ide", "graphiql" if settings.GRAPHIQL_ENABLED else None)
        kwargs.setdefault("multipart_uploads_enabled", True)
        super().__init__(**kwargs)

    async def get_context(self, request: HttpRequest, response) -> ChatContext:
        user, error = await authenticate(request.headers.get("Authorization"))
        request.user = user  # read by strawberry-django's permission extensions
        return ChatContext(request=request, response=response, user=user, auth_error=error)
