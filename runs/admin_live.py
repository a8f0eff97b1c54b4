"""The run page's live log: while a run is queued or running, its log (python) and output (shell)
grow on its admin page without a reload (``runs/static/runs/live_log.js`` polls
``GET /api/runs/{id}/log/`` with the offsets the page has, and stops when the run ends)."""

from __future__ import annotations

import json

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from core.admin_utils import STATUS_COLOURS
from core.status_words import STATUS_WORDS
from runs.models import Run

LIVE_LOG_JS = "runs/live_log.js"
GOING = (Run.Status.QUEUED, Run.Status.RUNNING)


def text_block(run: Run, field: str) -> SafeString:
    """``run``'s ``field`` (log_output or output) as a block of text, followed live while the run goes on."""
    text: str = getattr(run, field)
    going = run.status in GOING
    return render_to_string(
        "admin/runs/run/live_text.html",
        {
            "text": text,
            "going": going,
            "field": field,
            "offset": len(text),  # in characters of the stored text, as the API counts
            "url": reverse("run-log", args=[run.pk]) if going else "",
            "colours": json.dumps(STATUS_COLOURS) if going else "",
            "words": json.dumps({key: str(word) for key, word in STATUS_WORDS.items()}) if going else "",
        },
    )
