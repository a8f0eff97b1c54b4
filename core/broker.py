"""kombu's transports for the embedded broker and for Redis, each mended where it fails.

**The embedded broker**: kombu's filesystem transport, with each message written atomically.

kombu writes a message straight into the queue folder, so a worker polling at that moment can
take a file that is still empty or half written. It then fails to decode it and the worker stops
("Unrecoverable error: JSONDecodeError", kombu issue #1551), and the message is lost. Here a
message is written under a name the reader skips and renamed into place once complete: a rename
within one folder is atomic, so a reader sees the whole message or none of it.

**Redis**: when a worker loses its connection, Celery first "collects" the connection, which
clears the transport's ``client``, and then closes it. Closing the Redis channel restores the
unacknowledged messages (a task running with ``acks_late`` has one), and a task that ends later
acknowledges its message, both through that transport: kombu 5.7 then fails with
"'NoneType' object has no attribute 'hostname'", an error no caller expects, and the worker stops
("Unrecoverable error"). Here a channel whose connection is gone raises a connection error
instead, which Celery and kombu handle as the lost connection it is: the running task goes on,
its acknowledgement is dropped, and an unacknowledged message is delivered again after the
visibility timeout, where the run's claim refuses it.

``register()`` (called by crontask.celery) makes ``filesystem://`` URLs, the default
CELERY_BROKER_URL, and ``redis://``/``rediss://`` use these transports; any other URL keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps
from redis.exceptions import ConnectionError as RedisConnectionError

PARTIAL = ".partial"  # the reader takes only names ending in ".<queue>.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own signature; celery-types names it otherwise
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


class RedisChannel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the connection was collected: it is gone
            raise RedisConnectionError("the connection to Redis was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # in kombu, missing from celery-types


class RedisTransport(redis.Transport):
    Channel = RedisChannel


def register() -> None:
    """Make the ``filesystem`` and ``redis`` URL schemes use these transports (kombu looks them
    up at each connect)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = f"{__name__}:RedisTransport"
