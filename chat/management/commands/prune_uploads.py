"""Delete uploads that were never attached to a message, with their files."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.services.attachments import prune_unattached_uploads


class Command(BaseCommand):
    help = (
        "Delete uploads never attached to a message and older than UPLOAD_PRUNE_AFTER_HOURS "
        "(or --hours), with their stored files and thumbnails. Run it from cron or a timer."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help=f"Age in hours (default: the setting, now {settings.UPLOAD_PRUNE_AFTER}).",
        )

    def handle(self, *args, hours=None, **options):
        if hours is not None and hours < 0:
            raise CommandError("--hours must not be negative.")
        older_than = timedelta(hours=hours) if hours is not None else settings.UPLOAD_PRUNE_AFTER
        deleted = prune_unattached_uploads(older_than)
        self.stdout.write(f"Deleted {deleted} unattached upload(s) older than {older_than}.")
