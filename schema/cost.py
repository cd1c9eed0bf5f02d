"""Query cost limits: an operation's cost is estimated from its list sizes before
it runs, and an operation over the budget (``GRAPHQL_MAX_COST``) is refused with
``QUERY_TOO_COMPLEX``, its computed cost in ``extensions.cost``.

The cost counts the objects an operation may return: every field of an object,
interface or union type costs one per parent it is resolved for; scalar fields
are free (they are columns of rows already loaded). A list multiplies what is
below it by its size:

- a field with ``first``/``last`` (connections, ``Room.members``): that value, the
  page size default (``PAGE_SIZE_DEFAULT``) when absent, at most ``PAGE_SIZE_MAX``
  (the resolvers refuse more); a connection's ``edges``/``nodes`` take its size;
- a list with a known bound (``LIST_SIZES``): that bound;
- any other list: ``GRAPHQL_COST_LIST_SIZE``.

Fragments are expanded where they are spread; the fragments on each possible
type of a union or an interface are all counted (an upper bound). Depth, tokens and aliases are limited
apart (schema/limits.py); this limit catches what stays under those: 15 aliases of
100 rooms with 100 members each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from schema.limits import QUERY_TOO_COMPLEX
from schema.live.strawberry_adapter import graphql_core_schema

# Lists whose length the domain bounds, by "Type.field".
LIST_SIZES: dict[str, Callable[[], int]] = {
    "Message.attachments": lambda: settings.MAX_FILES_PER_MESSAGE,
}

PAGE_ARGUMENTS = ("first", "last")
CONNECTION_LISTS = ("edges", "nodes")
# A fragment spread inside itself is a validation error; this guards the walk anyway.
MAX_FRAGMENT_NESTING = 50


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _int_argument(node: FieldNode, name: str, variables: dict[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            raw = variables.get(value.name.value)
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return None


def _page_size(node: FieldNode, variables: dict[str, Any]) -> int:
    sizes = [_int_argument(node, name, variables) for name in PAGE_ARGUMENTS]
    given = [size for size in sizes if size is not None]
    size = max(given) if given else settings.PAGE_SIZE_DEFAULT
    return max(0, min(size, settings.PAGE_SIZE_MAX))


class CostEstimator:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables or {}

    def _fields(self, selection_set: SelectionSetNode, owner: Any, depth: int = 0) -> Iterator[tuple[FieldNode, Any]]:
        """The field nodes of a selection set, fragments expanded, each with the type
        that defines it (a fragment's type condition, else the enclosing type)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, owner
                continue
            if isinstance(selection, InlineFragmentNode):
                fragment = selection
            elif isinstance(selection, FragmentSpreadNode) and depth < MAX_FRAGMENT_NESTING:
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
            else:
                continue
            condition = fragment.type_condition
            fragment_owner = self.schema.get_type(condition.name.value) if condition else owner
            yield from self._fields(fragment.selection_set, fragment_owner or owner, depth + 1)

    def cost(self, parent_type: Any, selection_set: SelectionSetNode | None, multiplier: int, page: int | None) -> int:
        """Objects returned below ``selection_set``, resolved ``multiplier`` times; ``page``
        is the enclosing connection's size (for its ``edges``/``nodes``), None outside one."""
        if selection_set is None:
            return 0
        total = 0
        for node, owner in self._fields(selection_set, parent_type):
            definition = getattr(owner, "fields", {}).get(node.name.value)
            if definition is None:  # __typename and introspection fields
                continue
            named = get_named_type(definition.type)
            if not is_composite_type(named):
                continue
            key = f"{owner.name}.{node.name.value}"
            has_page_arguments = any(name in definition.args for name in PAGE_ARGUMENTS)
            if has_page_arguments and not _is_list(definition.type):
                # A connection: one object here, its page size applies to its edges.
                size, child_page = 1, _page_size(node, self.variables)
            elif has_page_arguments:
                size, child_page = _page_size(node, self.variables), None
            elif _is_list(definition.type):
                if node.name.value in CONNECTION_LISTS and page is not None:
                    size = page
                elif key in LIST_SIZES:
                    size = LIST_SIZES[key]()
                else:
                    size = settings.GRAPHQL_COST_LIST_SIZE
                child_page = None
            else:
                size, child_page = 1, None
            objects = multiplier * size
            total += objects + self.cost(named, node.selection_set, objects, child_page)
        return total


def operation_cost(
    schema: GraphQLSchema, document: Any, operation_name: str | None, variables: dict | None
) -> int | None:
    """The estimated cost of the operation ``operation_name`` of ``document`` (None if
    the document names no such operation: validation reports that)."""
    operation: OperationDefinitionNode | None = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return CostEstimator(schema, fragments, variables or {}).cost(root, operation.selection_set, 1, None)


def too_complex_error(cost: int, budget: int) -> GraphQLError:
    return GraphQLError(
        f"This operation is too expensive: its estimated cost is {cost}, the limit is {budget}. "
        "Ask for smaller pages (first/last) or fewer nested lists.",
        extensions={"code": QUERY_TOO_COMPLEX, "cost": cost, "maxCost": budget},
    )


class CostLimit(SchemaExtension):
    """Refuses an operation over ``GRAPHQL_MAX_COST`` before it runs.

    Runs in the validation step, after the document validated (the validation
    cache runs before it in the extension list), so the walk sees only known fields;
    a refusal is a pre-execution error, as a validation error would be."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        budget = settings.GRAPHQL_MAX_COST
        if budget and context.graphql_document is not None and not context.pre_execution_errors:
            cost = operation_cost(
                graphql_core_schema(context.schema), context.graphql_document, context.operation_name, context.variables
            )
            if cost is not None and cost > budget:
                context.pre_execution_errors = [too_complex_error(cost, budget)]
        yield
