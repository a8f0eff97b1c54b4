"""Signals core sends to the apps above it, which it may not import."""

from __future__ import annotations

from django.dispatch import Signal

#: An API write refused with 403 (``core.exceptions.api_exception_handler``), after its
#: transaction, if any, has rolled back. Arguments: ``method``, ``path``, ``permission`` (the
#: permission it lacked, or the service's reason). The audit trail records it.
write_refused = Signal()
