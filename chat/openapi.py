"""The OpenAPI 3.1 description of the REST shim (``GET /api/openapi.json``).

Written by hand next to the views it describes (chat/views.py), and kept true by
tests: the document validates as OpenAPI 3.1, names every ``/api/`` route, and
schemathesis sends generated requests to the real views and checks each answer
against it (tests/test_openapi.py). Limits are read from the settings, so the
document tells a client what this deployment accepts.
"""

from __future__ import annotations

from django.conf import settings

ERROR_CODES = [
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "ROOM_FULL",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "RATE_LIMITED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_SERVER_ERROR",
]


def _error(description: str, *, retry_after: bool = False, authenticate: bool = False) -> dict:
    response: dict = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    headers = {}
    if retry_after:
        headers["Retry-After"] = {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    if authenticate:
        headers["WWW-Authenticate"] = {"description": '`Bearer realm="chat"`.', "schema": {"type": "string"}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: str) -> dict:
    """The JSON error responses of ``statuses`` (every view answers these the same way)."""
    known = {
        "400": _error("Malformed input (`BAD_USER_INPUT`); `fields` says which field."),
        "401": _error("No valid token (`UNAUTHENTICATED`).", authenticate=True),
        "403": _error("Signed in but not allowed (`FORBIDDEN`)."),
        "404": _error("`NOT_FOUND`: missing, or not visible to the caller (the two are never told apart)."),
        "405": _error("`METHOD_NOT_ALLOWED`; `Allow` names the method to use."),
        "409": _error("`ROOM_FULL`."),
        "413": _error("`PAYLOAD_TOO_LARGE`: a file or the whole request is over the limit; `maxBytes` says it."),
        "415": _error("`UNSUPPORTED_MEDIA_TYPE`: the sniffed content type is not accepted."),
        "429": _error("`RATE_LIMITED`: `retryAfter` seconds (also in `Retry-After`).", retry_after=True),
        "503": _error("`SERVICE_UNAVAILABLE`: the database or another backing service failed; try again."),
    }
    return {status: known[status] for status in statuses}


def _file_response(description: str) -> dict:
    return {
        "description": description,
        "headers": {
            "Content-Disposition": {
                "description": "`inline` for types a browser shows safely, `attachment` otherwise.",
                "schema": {"type": "string"},
            },
        },
        "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}},
    }


def _download(kind: str, summary: str) -> dict:
    return {
        "get": {
            "operationId": f"{kind}Attachment",
            "summary": summary,
            "description": (
                "Members of the message's room (and the uploader while the file is not attached yet) get the bytes, "
                "authenticated by a JWT or by the signed `sig` of the URL that GraphQL's `downloadUrl`/`thumbnailUrl` "
                f"return (valid {settings.DOWNLOAD_URL_MAX_AGE} s). Everyone else gets the same 404 as for a "
                "missing file."
            ),
            "security": [{"bearer": []}, {}],
            "parameters": [
                {"$ref": "#/components/parameters/AttachmentId"},
                {
                    "name": "sig",
                    "in": "query",
                    "required": False,
                    "description": "The signature from a `downloadUrl`/`thumbnailUrl`.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {"200": _file_response("The file."), **_errors("401", "404", "405", "503")},
        }
    }


def document() -> dict:
    max_bytes = settings.MAX_UPLOAD_BYTES
    max_files = settings.MAX_FILES_PER_MESSAGE
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chat REST shim",
            "version": "1.0.0",
            "description": (
                "Plain HTTP endpoints beside the GraphQL API (`/graphql/`) for clients that cannot send GraphQL "
                "multipart requests: uploads, messages with files, and authorized downloads. They take the same "
                "JWT as GraphQL (`Authorization: Bearer <token>` or `JWT <token>`; get one with the `tokenAuth` "
                "mutation) and apply the same rules. A session cookie never authenticates these calls. Errors are "
                '`{"error": {"code", "message", ...}}` with the codes GraphQL uses in `extensions.code`.'
            ),
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/api/uploads/": {
                "post": {
                    "operationId": "uploadAttachment",
                    "summary": "Upload one file, to attach to a message later (`attachmentIds` of `sendMessage`).",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {
                                            "type": "string",
                                            "contentMediaType": "application/octet-stream",
                                            "description": f"At most {max_bytes} bytes; type sniffed from content.",
                                        }
                                    },
                                },
                                "encoding": {"file": {"contentType": "*/*"}},
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The stored upload, not attached to any message yet.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Attachment"}}},
                        },
                        **_errors("400", "401", "405", "413", "415", "429", "503"),
                    },
                }
            },
            "/api/rooms/{roomId}/messages/": {
                "post": {
                    "operationId": "postMessage",
                    "summary": "Send a message, with files, to a room; subscribers receive it like any other.",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "roomId",
                            "in": "path",
                            "required": True,
                            "description": "The room's global ID (as GraphQL gives it) or its numeric id.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "text": {"type": "string", "description": "The message text."},
                                        "file": {
                                            "type": "array",
                                            "maxItems": max_files,
                                            "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                                            "description": f"Up to {max_files} files of at most {max_bytes} bytes.",
                                        },
                                        "clientId": {
                                            "type": "string",
                                            "description": "Idempotency key: the same key from the same sender "
                                            "creates one message.",
                                        },
                                        "replyToId": {
                                            "type": "string",
                                            "description": "Global ID of the message this one replies to.",
                                        },
                                    },
                                },
                                "encoding": {"file": {"contentType": "*/*"}},
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The message as stored.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                        },
                        **_errors("400", "401", "403", "404", "405", "409", "413", "415", "429", "503"),
                    },
                }
            },
            "/api/attachments/{attachmentId}/download": _download("download", "Download an attachment's bytes."),
            "/api/attachments/{attachmentId}/thumbnail": _download("thumbnail", "Download an image's thumbnail."),
            "/api/avatars/{avatarId}/{size}": {
                "get": {
                    "operationId": "downloadAvatar",
                    "summary": "Download a user's or room's picture.",
                    "description": (
                        "A square PNG or JPEG, for whoever may see the user or room that shows it, authenticated "
                        "by a JWT or by the signed `sig` of the URL that GraphQL's `avatarUrl` returns (valid "
                        f"{settings.DOWNLOAD_URL_MAX_AGE} s). Everyone else gets the same 404 as for a missing picture."
                    ),
                    "security": [{"bearer": []}, {}],
                    "parameters": [
                        {
                            "name": "avatarId",
                            "in": "path",
                            "required": True,
                            "description": "The avatar's id (part of the URL `avatarUrl` returns).",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "size",
                            "in": "path",
                            "required": True,
                            "description": "64 or 256 (pixels per side).",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "sig",
                            "in": "query",
                            "required": False,
                            "description": "The signature from an `avatarUrl`.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"200": _file_response("The picture."), **_errors("401", "404", "405", "503")},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapiDocument",
                    "summary": "This document.",
                    "security": [{}],
                    "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from the GraphQL `tokenAuth` or `refreshToken` mutation.",
                }
            },
            "parameters": {
                "AttachmentId": {
                    "name": "attachmentId",
                    "in": "path",
                    "required": True,
                    "description": "The attachment's global ID or numeric id.",
                    "schema": {"type": "string"},
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": ERROR_CODES},
                                "message": {"type": "string"},
                                "fields": {
                                    "type": "object",
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                                },
                                "retryAfter": {"type": "integer", "minimum": 0},
                                "maxBytes": {"type": "integer", "minimum": 0},
                            },
                        }
                    },
                },
                "Attachment": {
                    "type": "object",
                    "required": ["id", "databaseId", "name", "contentType", "size", "downloadUrl", "createdAt"],
                    "properties": {
                        "id": {"type": "string", "description": "Global ID (GraphQL's `Attachment.id`)."},
                        "databaseId": {"type": "integer"},
                        "name": {"type": "string"},
                        "contentType": {"type": "string"},
                        "size": {"type": "integer", "minimum": 0},
                        "width": {"type": ["integer", "null"]},
                        "height": {"type": ["integer", "null"]},
                        "downloadUrl": {"type": ["string", "null"], "description": "Signed, short-lived path."},
                        "thumbnailUrl": {"type": ["string", "null"], "description": "Images only."},
                        "createdAt": {"type": "string", "format": "date-time"},
                    },
                },
                "Message": {
                    "type": "object",
                    "required": ["id", "databaseId", "roomId", "sender", "text", "createdAt", "attachments"],
                    "properties": {
                        "id": {"type": "string"},
                        "databaseId": {"type": "integer"},
                        "roomId": {"type": "string"},
                        "sender": {
                            "type": ["object", "null"],
                            "required": ["id", "username", "displayName"],
                            "properties": {
                                "id": {"type": "string"},
                                "username": {"type": "string"},
                                "displayName": {"type": "string"},
                            },
                        },
                        "text": {"type": "string"},
                        "clientId": {"type": ["string", "null"]},
                        "replyToId": {"type": ["string", "null"]},
                        "createdAt": {"type": "string", "format": "date-time"},
                        "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
                    },
                },
            },
        },
    }
