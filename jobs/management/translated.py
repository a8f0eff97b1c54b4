"""Commands whose help is translated: argparse wants plain strings, so a lazy one is turned into
one when the command is made, in the language active then (``LANGUAGE_CODE`` for ``manage.py``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.functional import Promise


class TranslatedCommand(BaseCommand):
    #: The command's help, marked with ``gettext_lazy``; ``help`` is it translated.
    help_text: str | Promise = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = str(self.help_text)
