"""Write the trusted-documents manifest of our first-party clients.

    .venv/bin/python scripts/trusted_documents.py [OUTPUT]   # default: trusted-documents.json

The manifest lists every operation of the web chat (chat/static/chat/app.js) and of
the e2e clients (tests/e2e), exactly as they send them, in Apollo's persisted query
manifest format. Serve with ``GRAPHQL_TRUSTED_DOCUMENTS=<that file>`` and only those
documents run (schema/persisted.py). Regenerate it whenever a client's operation
changes: a changed document has a new hash.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from graphql import OperationDefinitionNode, parse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.client_operations import ROOT, e2e_documents, web_chat_documents

DEFAULT_OUTPUT = ROOT / "trusted-documents.json"


def sha256_hex(document: str) -> str:
    """The document's id: the SHA-256 of its exact text (as schema/persisted.py checks it)."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def manifest(documents: list[str]) -> dict:
    operations = {}
    for body in documents:
        definitions = [d for d in parse(body).definitions if isinstance(d, OperationDefinitionNode)]
        first = definitions[0]
        operations[sha256_hex(body)] = {
            "id": sha256_hex(body),
            "name": first.name.value if first.name else None,
            "type": first.operation.value,
            "body": body,
        }
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": sorted(operations.values(), key=lambda op: (op["name"] or "", op["id"])),
    }


def first_party_manifest() -> dict:
    return manifest([*web_chat_documents(), *e2e_documents()])


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    data = first_party_manifest()
    output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"{len(data['operations'])} operations written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
