"""What users may search for: one check for every `search` argument.

A search term longer than any name or sentence someone looks for is refused
rather than handed to the database (SQLite refuses LIKE patterns over 50,000
bytes; Postgres parses a full-text query of any length).
"""

from __future__ import annotations

from chat.errors import BadUserInput

SEARCH_MAX_LENGTH = 200


def clean_search_term(value: str | None, field: str = "search") -> str | None:
    """The term to search for, stripped; None for no search (missing or blank).

    ``BadUserInput`` past ``SEARCH_MAX_LENGTH`` characters.
    """
    term = (value or "").strip()
    if not term:
        return None
    if len(term) > SEARCH_MAX_LENGTH:
        raise BadUserInput(
            f"Search for at most {SEARCH_MAX_LENGTH} characters.",
            fields={field: [f"At most {SEARCH_MAX_LENGTH} characters."]},
        )
    return term
