"""The embedded broker: kombu's filesystem transport, with each message written atomically.

kombu writes a message straight into the queue folder, so a worker polling at that moment can
take a file that is still empty or half written. It then fails to decode it and the worker stops
("Unrecoverable error: JSONDecodeError", kombu issue #1551), and the message is lost. Here a
message is written under a name the reader skips and renamed into place once complete: a rename
within one folder is atomic, so a reader sees the whole message or none of it.

``register()`` (called by crontask.celery) makes ``filesystem://`` URLs, the default
CELERY_BROKER_URL, use this transport; any other URL keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL = ".partial"  # the reader takes only names ending in ".<queue>.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` on ``queue``: the same file name as kombu's, complete when it appears."""
        filename = os.path.join(self.data_folder_out, f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg")
        partial = filename + PARTIAL
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, filename)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {filename!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make the ``filesystem`` URL scheme use this transport (kombu looks it up at each connect)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
