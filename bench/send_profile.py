"""What one ``sendMessage`` costs the server, with nobody subscribed:
``python -m bench.send_profile [--sends N] [--lines K]``.

The fan-out benchmark's saturating sender waits for each acknowledgement, so at
N subscribers its deliveries/s are N / round trip: this isolates the mutation's
own cost. It runs the bench settings on a throwaway SQLite file, sends through
Django's test client (the real middleware, view and schema, without a socket),
and prints the mean time per send, the SQL statements of one send and a cProfile
summary (cumulative time).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

SEND = "mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=50, help="sends timed, and as many profiled")
    parser.add_argument("--lines", type=int, default=30, help="lines of the profile")
    args = parser.parse_args()

    database = Path(tempfile.mkdtemp(prefix="chat-send-profile-")) / "db.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

    import django

    django.setup()

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from chat import tokens
    from chat.models import User
    from chat.services import rooms

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(username="sender", password="a long enough password 7", email="s@example.com")
    room = rooms.create_room(user, "profiled")
    room_id = base64.b64encode(f"Room:{room.pk}".encode()).decode()
    client = Client(headers={"Authorization": f"JWT {tokens.create_access_token(user)[0]}"})

    def send(n: int) -> None:
        body = json.dumps({"query": SEND, "variables": {"roomId": room_id, "text": f"message {n}"}})
        response = client.post("/graphql/", body, content_type="application/json")
        assert response.status_code == 200 and "errors" not in response.json(), response.content

    for n in range(5):  # warm up: imports, caches, the first connection
        send(n)
    started = time.perf_counter()
    for n in range(args.sends):
        send(n)
    print(f"sendMessage: {(time.perf_counter() - started) / args.sends * 1000:.1f} ms per send (mean of {args.sends})")

    with CaptureQueriesContext(connection) as queries:
        send(-1)
    print(f"\n{len(queries.captured_queries)} SQL statements in one send:")
    for query in queries.captured_queries:
        print(f"  {query['sql'][:140]}")

    profile = cProfile.Profile()
    profile.enable()
    for n in range(args.sends):
        send(n)
    profile.disable()
    print()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.lines)


if __name__ == "__main__":
    main()
