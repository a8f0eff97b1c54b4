"""A JSON log formatter: one object per line, with the event's fields (run_id, job_id, …) as keys."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

EVENT_FIELDS = ("run_id", "job_id", "status", "duration_ms", "scheduled_for", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            if hasattr(record, name):
                event[name] = getattr(record, name)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)
