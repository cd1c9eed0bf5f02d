"""Subscription events executed once per event, shared by the subscribers who
would see exactly the same result.

Without this, graphql-core executes the subscription's selection set again for
every subscriber of every event (profiled under bench/: the largest
part of a delivery once node ids were fixed, see schema/node_ids.py). Here the
per-event executor looks up a result computed for an *identical* execution:

- the same event (``event_identity``: kind, room, seq, and the revision of a
  redacted one) and the same cursor. The cursor holds each subscription's
  positions, so all-rooms subscriptions of users in different rooms have
  different ones: the live path (schema/live/fast_path.py) therefore renders
  with ``CURSOR_SLOT`` in its place and writes each subscriber's own cursor
  into the shared JSON (``with_cursor``);
- the same operation text, operation name and variable values;
- a selection made only of fields whose value cannot depend on the viewer
  (``VIEWER_INDEPENDENT``); any other field (``myRole``, ``unreadCount``,
  download URLs, ...) adds the viewer's id to the key, so that user gets their
  own execution.

Authorization stays per subscriber: whether a user receives an event at all is
decided before this point by chat/realtime.py (membership, own typing, ...);
only the rendering of an event the user may see is shared. Results with errors
are never shared. Ephemeral events (no seq) are executed per subscriber.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
from collections import OrderedDict

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationType,
    get_named_type,
)

from chat import redaction
from schema.live.strawberry_adapter import StrawberryGraphQLCoreExecutionContext

# Fields whose values are the same for every subscriber who may see the event
# (snapshot data: ids, texts, names, times), qualified by the type (or interface)
# that declares them: another type's field of the same name may well depend on
# who asks. Any field not listed makes the result per viewer.
_EVENT = ("cursor", "seq", "createdAt", "room")
VIEWER_INDEPENDENT = frozenset(
    {
        *(f"RoomEvent.{name}" for name in _EVENT),
        *(f"{kind}.message" for kind in ("MessageAdded", "MessageEdited", "MessageDeleted")),
        *(f"{kind}.{name}" for kind in ("MemberJoined", "MemberRoleChanged") for name in ("user", "role", "by")),
        *(f"MemberLeft.{name}" for name in ("user", "reason", "by")),
        "ReadReceipt.user",
        "ReadReceipt.messageId",
        "TypingChanged.user",
        "TypingChanged.typing",
        "PresenceChanged.user",
        "PresenceChanged.online",
        *(
            f"Message.{name}"
            for name in ("id", "text", "clientId", "sender", "room", "createdAt", "editedAt", "deletedAt", "isDeleted")
        ),
        *(f"User.{name}" for name in ("id", "username", "displayName")),
        *(f"Room.{name}" for name in ("id", "name", "topic", "kind", "isPrivate")),
    }
)

RESULTS_MAX = 2048
_results: OrderedDict[tuple, ExecutionResult | asyncio.Future] = OrderedDict()
_viewer_independent: dict[tuple, bool] = {}
_payloads: dict[tuple, str] = {}  # serialized shared results, for the fast path (schema/live/fast_path.py)


def _shared_field(parent, name: str) -> bool:
    if f"{parent.name}.{name}" in VIEWER_INDEPENDENT:
        return True
    return any(f"{interface.name}.{name}" in VIEWER_INDEPENDENT for interface in getattr(parent, "interfaces", ()))


def _fields_viewer_independent(schema, parent, selection_set, fragments, seen: set[str]) -> bool:
    """Whether every field selected under ``parent`` (a GraphQL type) is viewer-independent."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name == "__typename":
                continue
            fields = getattr(parent, "fields", None) or {}
            if name not in fields or not _shared_field(parent, name):
                return False
            child = get_named_type(fields[name].type)
            if selection.selection_set and not _fields_viewer_independent(
                schema, child, selection.selection_set, fragments, seen
            ):
                return False
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            inner = schema.get_type(condition.name.value) if condition else parent
            if inner is None or not _fields_viewer_independent(schema, inner, selection.selection_set, fragments, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen:
                continue
            seen.add(name)
            fragment = fragments.get(name)
            inner = schema.get_type(fragment.type_condition.name.value) if fragment is not None else None
            if inner is None or not _fields_viewer_independent(schema, inner, fragment.selection_set, fragments, seen):
                return False
    return True


def _put(key: tuple, value) -> None:
    _results[key] = value
    _results.move_to_end(key)
    while len(_results) > RESULTS_MAX:
        _results.popitem(last=False)


def subscription_signature(schema, operation, fragments, variable_values, user) -> tuple | None:
    """What, besides the event and the cursor, an execution's result depends on:
    the operation, the variable values and, unless the selection is made only of
    viewer-independent fields, the viewer. None if it cannot be shared."""
    loc = operation.loc
    if loc is None:
        return None
    operation_key = (loc.source.body, operation.name.value if operation.name else None)
    shared = _viewer_independent.get(operation_key)
    if shared is None:
        # The root field is the subscription itself (``roomEvents``...): what it selects decides.
        root_fields = schema.subscription_type.fields if schema.subscription_type else {}
        shared = all(
            isinstance(root, FieldNode)
            and root.name.value in root_fields
            and _fields_viewer_independent(
                schema, get_named_type(root_fields[root.name.value].type), root.selection_set, fragments, set()
            )
            for root in operation.selection_set.selections
        )
        if len(_viewer_independent) > 1024:
            _viewer_independent.clear()
        _viewer_independent[operation_key] = shared
    try:
        variables = json.dumps(variable_values, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return (operation_key, variables, None if shared else getattr(user, "pk", None))


def event_identity(message: dict) -> tuple | None:
    """What tells a stored event's renderings apart, from its channel-layer message:
    its kind, room, seq and revision (a redacted event renders anew); None for an
    ephemeral event (typing, presence), which is rendered per delivery."""
    seq = message.get("seq")
    if seq is None:
        return None
    return (message["kind"], message["room"], seq, redaction.revision(message.get("payload")))


def share_key(identity: tuple, cursor: str, signature: tuple) -> tuple:
    """The key of one shared execution: the event (``event_identity``), the cursor,
    and the signature (``subscription_signature``)."""
    return (*identity, cursor, *signature)


# The cursor a shared live rendering is made with. Random per process and never sent
# (``with_cursor`` replaces it), so that no field's value can be mistaken for it. Its
# characters are a cursor's own (chat/cursors.py), so its JSON is itself in quotes.
CURSOR_SLOT = f"r1.slot{secrets.token_hex(16)}"
_SLOT_JSON = f'"{CURSOR_SLOT}"'


def with_cursor(payload: str, cursor: str) -> str:
    """A payload rendered with ``CURSOR_SLOT``, with ``cursor`` in its place (a
    cursor's JSON is itself in quotes: chat/cursors.py)."""
    return payload.replace(_SLOT_JSON, f'"{cursor}"')


def shared_payload(key: tuple, encode) -> str | None:
    """The JSON of ``{"data": ...}`` of the execution shared under ``key`` (see
    ``_share_key``), encoded once with ``encode`` (the transport's JSON encoder);
    None if there is none (yet)."""
    payload = _payloads.get(key)
    if payload is None:
        result = _results.get(key)
        if not isinstance(result, ExecutionResult):
            return None
        payload = store_payload(key, encode({"data": result.data}))
    return payload


def store_payload(key: tuple, payload: str) -> str:
    _payloads[key] = payload
    while len(_payloads) > RESULTS_MAX:
        _payloads.pop(next(iter(_payloads)))
    return payload


# The executor of the subscription operation being started, for its resolver
# (schema/live/fast_path.py executes later events with it).
subscription_executor: contextvars.ContextVar = contextvars.ContextVar("subscription_executor", default=None)


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with shared subscription event results."""

    def _share_key(self) -> tuple | None:
        if self.operation.operation != OperationType.SUBSCRIPTION:
            return None
        event = self.root_value
        identity = getattr(event, "identity", None)
        cursor = getattr(event, "cursor", None)
        if identity is None or cursor is None:
            return None
        user = getattr(self.context_value, "user", None)
        signature = subscription_signature(self.schema, self.operation, self.fragments, self.variable_values, user)
        if signature is None:
            return None
        return share_key(identity, cursor, signature)

    def build_resolve_info(self, field_def, field_nodes, parent_type, path):
        if path.prev is None and self.operation.operation == OperationType.SUBSCRIPTION:
            subscription_executor.set(self)  # the subscription field's resolver is called next
        return super().build_resolve_info(field_def, field_nodes, parent_type, path)

    def execute_operation(self, *args, **kwargs):
        key = self._share_key()
        if key is None:
            return super().execute_operation(*args, **kwargs)
        hit = _results.get(key)
        if isinstance(hit, ExecutionResult):
            return hit
        if hit is not None:  # being computed for another subscriber: wait for it
            return self._await_shared(hit, args, kwargs)
        result = super().execute_operation(*args, **kwargs)
        if not self.is_awaitable(result):
            if not result.errors:
                _put(key, result)
            return result
        future = asyncio.get_running_loop().create_future()
        _put(key, future)
        # A task, so that the shared result completes even if this subscriber goes away.
        return asyncio.ensure_future(self._finish(key, future, result))

    async def _finish(self, key: tuple, future: asyncio.Future, pending) -> ExecutionResult:
        try:
            result = await pending
        except BaseException:
            _results.pop(key, None)
            future.set_result(None)
            raise
        if result.errors:
            _results.pop(key, None)
            future.set_result(None)  # waiters execute for themselves
        else:
            _put(key, result)
            future.set_result(result)
        return result

    async def _await_shared(self, future: asyncio.Future, args, kwargs) -> ExecutionResult:
        result = await asyncio.shield(future)
        if result is not None:
            return result
        own = super().execute_operation(*args, **kwargs)
        return await own if self.is_awaitable(own) else own
