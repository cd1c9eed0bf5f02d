"""Full-text search over message text: a GIN index on Postgres, an FTS5 table on SQLite
(kept in step by chat/search.py on send, edit and delete)."""

from django.db import migrations

# The names chat/search.py uses (a migration keeps its own copy: it must not change later).
FTS_TABLE = "chat_message_search"
PG_INDEX = "message_text_search_idx"
SENTINELS = ("\ue000", "\ue001")

SQLITE_CREATE = [
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, tokenize='unicode61 remove_diacritics 2')",
    # Messages sent before the table existed; deleted ones have no text and are not searchable.
    f"INSERT INTO {FTS_TABLE}(rowid, text) SELECT id, replace(replace(text, char({ord(SENTINELS[0])}), ''), "
    f"char({ord(SENTINELS[1])}), '') FROM chat_message WHERE deleted_at IS NULL AND text != ''",
]
SQLITE_DROP = [f"DROP TABLE IF EXISTS {FTS_TABLE}"]
PG_CREATE = [f"CREATE INDEX {PG_INDEX} ON chat_message USING gin (to_tsvector('simple'::regconfig, COALESCE(text, '')))"]
PG_DROP = [f"DROP INDEX IF EXISTS {PG_INDEX}"]


def run(statements_by_vendor):
    def apply(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_notifications")]

    operations = [
        migrations.RunPython(
            run({"sqlite": SQLITE_CREATE, "postgresql": PG_CREATE}),
            run({"sqlite": SQLITE_DROP, "postgresql": PG_DROP}),
        )
    ]
