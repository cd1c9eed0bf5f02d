"""Delete old events (the resume log), keeping each room's latest one."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.realtime import prune_events


class Command(BaseCommand):
    help = (
        "Delete events older than EVENT_RETENTION (or --days), keeping each room's latest event. "
        "Clients cannot resume from before what is kept. Run it from cron or a timer."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help=f"Age in days (default: the setting, now {settings.EVENT_RETENTION}).",
        )

    def handle(self, *args, days=None, **options):
        if days is not None and days < 0:
            raise CommandError("--days must not be negative.")
        older_than = timedelta(days=days) if days is not None else settings.EVENT_RETENTION
        deleted = prune_events(older_than)
        self.stdout.write(f"Deleted {deleted} event(s) older than {older_than}.")
