"""The web chat's page (under a strict Content-Security-Policy) and where it
keeps its refresh token: an HttpOnly cookie that page scripts cannot read.

Why a cookie, given that a cookie never authenticates an API call: the API
(``/graphql/``, ``/api/``) still takes only the access token, from the
``Authorization`` header or ``connection_init``, and the page holds that one in
memory only. The cookie carries the refresh token, and only to the three views
below, which do nothing but exchange it: so a script injected into the page can
use the access token while the page is open, but cannot carry off the
long-lived token that would let it sign in again later, elsewhere.

The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` outside debug, and
scoped to ``WEB_SESSION_PATH``. The views also require the ``X-Chat-Web``
header (which no cross-site form can send, and which makes a cross-origin
``fetch`` preflight, refused by CORS) and a same-origin ``Origin`` when the
browser sends one. They are exempt from Django's CSRF check for those reasons:
the page never needs Django's CSRF cookie.

Every exchange rotates the token (``chat.tokens.rotate_refresh_token``), so a
token replayed after it was used ends the whole log-in, as through the API.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from chat import tokens
from chat.errors import Unauthenticated

COOKIE_NAME = "chat_refresh"
WEB_SESSION_PATH = "/web/session/"
WEB_HEADER = "X-Chat-Web"

# The page loads one module script and one stylesheet from this origin, talks to
# this origin over fetch and WebSocket ('self' covers ws:/wss: to the same host),
# and shows thumbnails from it.
# No inline script or style, no plugins, never framed.
WEB_CHAT_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class WebChatView(TemplateView):
    """The web chat page, with its Content-Security-Policy."""

    template_name = "chat/index.html"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = WEB_CHAT_CSP
        return response


def _refused(message: str, status: int) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": "UNAUTHENTICATED" if status == 401 else "FORBIDDEN", "message": message}}
    )
    response.status_code = status
    return response


def _from_the_page(request) -> bool:
    if request.headers.get(WEB_HEADER) != "1":
        return False
    origin = request.headers.get("Origin")
    return origin is None or url_has_allowed_host_and_scheme(
        origin + "/", allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def _with_tokens(issued: tokens.IssuedTokens) -> JsonResponse:
    """The access token in the body, the refresh token in the cookie only."""
    response = JsonResponse({"token": issued.token, "user": {"id": issued.user.pk, "username": issued.user.username}})
    response.set_cookie(
        COOKIE_NAME,
        issued.refresh_token,
        max_age=int(settings.JWT_REFRESH_EXPIRATION.total_seconds()),
        path=WEB_SESSION_PATH,
        secure=not settings.DEBUG,
        httponly=True,
        samesite="Strict",
    )
    return response


def _without_cookie(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(COOKIE_NAME, path=WEB_SESSION_PATH, samesite="Strict")
    return response


def _page_only(view):
    def checked(request):
        if not _from_the_page(request):
            return _refused("Only the web chat page may use this.", 403)
        return view(request)

    checked.__name__ = checked.__qualname__ = view.__name__
    checked.__doc__ = view.__doc__
    return csrf_exempt(require_POST(checked))


@_page_only
def keep_refresh_token(request):
    """``POST /web/session/`` with ``{"refreshToken": ...}`` from ``tokenAuth`` or
    ``register``: exchanged at once for a new pair; the refresh token goes into
    the cookie, the access token back to the page."""
    try:
        raw = json.loads(request.body or b"{}").get("refreshToken")
    except (ValueError, AttributeError):
        raw = None
    try:
        return _with_tokens(tokens.rotate_refresh_token(raw))
    except Unauthenticated as error:
        return _without_cookie(_refused(error.message, 401))


@_page_only
def refresh(request):
    """``POST /web/session/refresh/``: a new access token from the cookie's refresh token."""
    try:
        return _with_tokens(tokens.rotate_refresh_token(request.COOKIES.get(COOKIE_NAME)))
    except Unauthenticated as error:
        return _without_cookie(_refused(error.message, 401))


@_page_only
def log_out(request):
    """``POST /web/session/logout/``: revoke the cookie's refresh token and drop the cookie."""
    try:
        tokens.revoke_refresh_token(request.COOKIES.get(COOKIE_NAME))
    except Unauthenticated:
        pass  # nothing (left) to revoke: logging out still succeeds
    return _without_cookie(HttpResponse(status=204))
