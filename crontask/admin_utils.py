"""Small pieces the admin pages share: status badges and a paginator that never counts a huge table."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

STATUS_COLOURS = {
    "active": "#2e7d32", "success": "#2e7d32",
    "paused": "#8d6e63", "queued": "#546e7a", "running": "#1565c0", "completed": "#546e7a",
    "failed": "#c62828", "timeout": "#ef6c00", "lost": "#6a1b9a", "skipped": "#757575", "cancelled": "#757575",
}  # fmt: skip


def badge(status: str, label: str | None = None) -> SafeString:
    colour = STATUS_COLOURS.get(status, "#616161")
    return format_html(
        '<span class="ct-badge" style="background:{};color:#fff;border-radius:8px;padding:1px 8px;'
        'font-size:11px;white-space:nowrap">{}</span>',
        colour,
        label or status,
    )


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows (a bounded subquery), so a list of millions of runs stays cheap."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by().values("pk")[: self.CAP + 1].count()
