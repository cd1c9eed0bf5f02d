"""The GraphQL operations our own clients send, read from their sources.

- The web chat (chat/static/chat/app.js) and the e2e clients (tests/e2e) write
  their operations as JavaScript template literals, with `${NAME}` standing for
  other string constants of the same file (field lists) or of a module they
  import from (tests/e2e/lib/api.js). Every literal that starts with `query`,
  `mutation` or `subscription` is one document; substitutions are resolved from
  the `const NAME = `...`` definitions found in the file and in its imports.
- The docs (README.md, docs/*.md) carry theirs as ```graphql blocks.

Used by scripts/trusted_documents.py (the trusted-documents manifest) and by the
tests that keep our clients' operations inside the cost budget.
"""

from __future__ import annotations

import re
from pathlib import Path

from graphql import OperationDefinitionNode, parse, print_ast
from graphql.error import GraphQLSyntaxError

ROOT = Path(__file__).resolve().parent.parent
WEB_CHAT = ROOT / "chat/static/chat"  # every script of the web chat (app.js, inbox.js, ...)
E2E = ROOT / "tests/e2e"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A template literal without nested backticks (ours never nest them).
_TEMPLATE = re.compile(r"`((?:[^`\\]|\\.)*)`", re.DOTALL)
_CONSTANT = re.compile(
    r"""\bconst\s+([A-Z][A-Z0-9_]*)\s*=\s*(?:`((?:[^`\\]|\\.)*)`|'([^'\\\n]*)'|"([^"\\\n]*)")""", re.DOTALL
)
_SUBSTITUTION = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_IMPORT = re.compile(r"""import\s+[^;]*?\s+from\s+['"](\.[^'"]+)['"]""")
_OPERATION_START = re.compile(r"^\s*(query|mutation|subscription)\b")
_GRAPHQL_BLOCK = re.compile(r"```graphql\n(.*?)```", re.DOTALL)


def _constants(path: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """Template constants of a file and of the relative modules it imports."""
    seen = seen if seen is not None else set()
    if path in seen or not path.exists():
        return {}
    seen.add(path)
    source = path.read_text()
    found: dict[str, str] = {}
    for module in _IMPORT.findall(source):
        found.update(_constants((path.parent / module).resolve(), seen))
    found.update({name: "".join(bodies) for name, *bodies in _CONSTANT.findall(source)})
    return found


def _expand(text: str, constants: dict[str, str], depth: int = 0) -> str | None:
    """``text`` with its ``${NAME}`` substitutions resolved; None if one is not a constant."""
    missing = False

    def replace(match: re.Match) -> str:
        nonlocal missing
        value = constants.get(match.group(1))
        if value is None or depth > 5:
            missing = True
            return ""
        expanded = _expand(value, constants, depth + 1)
        if expanded is None:
            missing = True
            return ""
        return expanded

    result = _SUBSTITUTION.sub(replace, text)
    return None if missing else result


def documents_in_javascript(path: Path) -> list[str]:
    """Every GraphQL document written as a template literal in ``path``."""
    constants = _constants(path.resolve())
    documents = []
    for body in _TEMPLATE.findall(path.read_text()):
        if not _OPERATION_START.match(body):
            continue
        text = _expand(body, constants)
        if text is None:
            continue  # built from runtime values: not a fixed document
        try:
            parse(text)
        except GraphQLSyntaxError:
            continue
        documents.append(text)
    return documents


def documents_in_markdown(path: Path) -> list[str]:
    """Every operation of the ```graphql blocks of a Markdown file, one document each."""
    documents = []
    for block in _GRAPHQL_BLOCK.findall(path.read_text()):
        document = parse(block)
        fragments = [d for d in document.definitions if not isinstance(d, OperationDefinitionNode)]
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                documents.append("\n\n".join(print_ast(d) for d in [definition, *fragments]))
    return documents


def web_chat_documents() -> list[str]:
    return [document for path in sorted(WEB_CHAT.glob("*.js")) for document in documents_in_javascript(path)]


def e2e_documents() -> list[str]:
    files = sorted([*E2E.glob("lib/*.js"), *E2E.glob("tests/*.js")])
    return [document for path in files for document in documents_in_javascript(path)]


def docs_documents() -> list[str]:
    return [document for path in DOCS if path.exists() for document in documents_in_markdown(path)]
