"""A management command whose ``help`` is shown in the active language (LANGUAGE_CODE for a
command run from the shell).

argparse needs a ``str`` for the description, so ``help`` is marked with ``gettext_noop`` (a
``str`` that makemessages finds) and translated when the parser is made.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext


class TranslatedCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        self.help = gettext(self.help)
        return super().create_parser(prog_name, subcommand, **kwargs)
