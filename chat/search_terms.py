"""What users may search for: one check for every `search` argument.

A search term longer than any name or sentence someone looks for is refused
rather than handed to the database (SQLite refuses LIKE patterns over 50,000
bytes; Postgres parses a full-text query of any length).
"""

from __future__ import annotations

from django.conf import settings

from chat.errors import BadUserInput


def clean_search_term(value: str | None, field: str = "search") -> str | None:
    """The term to search for, stripped; None for no search (missing or blank).

    ``BadUserInput`` past ``SEARCH_QUERY_MAX_LENGTH`` characters.
    """
    term = (value or "").strip()
    if not term:
        return None
    limit = settings.SEARCH_QUERY_MAX_LENGTH
    if len(term) > limit:
        raise BadUserInput(f"Search for at most {limit} characters.", fields={field: [f"At most {limit} characters."]})
    return term
