"""`manage.py evaluate DATASET`: the one-vs-all evaluation of ml_service, from the platform's command line.

The same as `python -m ml_service.evaluation` (which needs no Django); see that module for the protocol."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ml_service import evaluation


class Command(BaseCommand):
    help = "One-vs-all top-1/5/10 and mAP on a folder laid out as images/<individual>/*.jpg + metadata.csv"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="arguments of python -m ml_service.evaluation"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        evaluation.main(list(args))
