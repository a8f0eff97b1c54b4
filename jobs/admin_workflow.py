"""The workflow on a job's admin page: its ``after`` fields, what it waits for and what it fires,
and a small graph of its chain drawn as inline SVG (no script, nothing fetched from elsewhere).

A mixin of ``jobs.admin.JobAdmin``, kept apart so that the job admin stays about jobs."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from jobs.dependencies import job_graph
from jobs.models import EDITABLE_PARTS, Job

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Job]
else:
    _Base = object

FIELDSET = gettext_lazy("Runs after")
#: The title of the job form's section the workflow's follows (jobs.admin's fieldsets).
POLICIES_TITLE = gettext_lazy("Policies")
WORKFLOW_FIELDS = tuple(name for name, part in EDITABLE_PARTS.items() if part == "dependencies")

# The graph's geometry, in SVG user units.
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 30, 60, 14, 6
EDGE_COLOURS = {"success": "#2e7d32", "failure": "#c62828", "finish": "#616161"}
MAX_LABEL = 20


class WorkflowAdminMixin(_Base):
    """Adds the "Runs after" fieldset: the editable ``after`` fields, and on a saved job the
    read-only ``workflow`` (what it waits for, what it fires, the graph)."""

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> list[Any]:
        fieldsets = list(super().get_fieldsets(request, obj))
        fields: tuple[str, ...] = (*WORKFLOW_FIELDS, "workflow") if obj is not None else WORKFLOW_FIELDS
        names = [name for name, _ in fieldsets]
        where = names.index(POLICIES_TITLE) + 1 if POLICIES_TITLE in names else len(fieldsets)
        fieldsets.insert(where, (FIELDSET, {"fields": fields}))
        return fieldsets

    def get_form(self, request: HttpRequest, obj: Job | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (WorkflowFormMixin, form), {})

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "workflow"]

    @admin.display(description=gettext_lazy("workflow"))
    def workflow(self, job: Job) -> SafeString | str:
        if job is None or job.pk is None or job._state.adding:
            return "—"
        graph = job_graph(job)
        return render_to_string(
            "admin/jobs/job/workflow.html",
            {
                "graph": graph,
                "svg": graph_svg(graph),
                "mode": job.after_mode,
                "paused": job.status != Job.Status.ACTIVE,
            },
        )


class WorkflowFormMixin(forms.BaseForm):
    """The job form's ``after`` fields may be left out or empty (a form posted as before they
    existed): no upstream jobs, mode ``any``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("after", "after_mode"):
            if name in self.fields:
                self.fields[name].required = False

    def clean_after(self) -> Any:
        value = self.cleaned_data.get("after")
        return [] if value in (None, "") else value

    def clean_after_mode(self) -> str:
        return self.cleaned_data.get("after_mode") or Job.AfterMode.ANY


def graph_svg(graph: dict[str, Any]) -> SafeString:
    """The chain as an SVG: one column per depth (upstream jobs left, the jobs they fire right),
    an arrow per edge coloured by its ``on``, each job a box that links to its page, the job of
    the page in bold, a deleted upstream job dashed."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    if len(nodes) < 2:
        return SafeString("")
    depth = _depths(list(nodes), graph["edges"])
    columns: dict[int, list[str]] = defaultdict(list)
    for node_id in sorted(nodes, key=lambda n: (depth[n], n)):
        columns[depth[node_id]].append(node_id)
    where = {
        node_id: (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
        for col, ids in columns.items()
        for row, node_id in enumerate(ids)
    }
    width = PAD * 2 + (max(columns) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(ids) for ids in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    edges = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1.5" marker-end="url(#ct-arrow-{})">'
        "<title>{} → {} on {}</title></line>",
        (
            (
                where[e["from"]][0] + BOX_W, where[e["from"]][1] + BOX_H // 2,
                where[e["to"]][0] - 2, where[e["to"]][1] + BOX_H // 2,
                EDGE_COLOURS.get(e["on"], "#616161"), e["on"], e["from"], e["to"], e["on"],
            )
            for e in graph["edges"]
        ),
    )  # fmt: skip
    boxes = format_html_join("", "{}", ((_box(nodes[n], *where[n]),) for n in nodes))
    markers = format_html_join(
        "",
        '<marker id="ct-arrow-{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{}"/></marker>',
        EDGE_COLOURS.items(),
    )
    return format_html(
        '<svg class="ct-workflow" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" '
        'role="img" aria-label="{}"><defs>{}</defs>{}{}</svg>',
        width, height, width, height, _("workflow graph"), markers, edges, boxes,
    )  # fmt: skip


def _box(node: dict[str, Any], x: int, y: int) -> SafeString:
    label = node["id"] if len(node["id"]) <= MAX_LABEL else node["id"][: MAX_LABEL - 1] + "…"
    state = node["status"] if node["exists"] else "deleted"
    shown = Job.Status(state).label if state in Job.Status.values else pgettext("status badge", "deleted")
    rect = format_html(
        '<rect x="{}" y="{}" width="{}" height="{}" rx="4" fill="{}" stroke="#555" stroke-width="{}"{}/>'
        '<text x="{}" y="{}" font-size="12" text-anchor="middle" font-weight="{}" fill="#222">{}</text>'
        "<title>{} ({})</title>",
        x, y, BOX_W, BOX_H, "#fff" if state == "active" else "#eee", 2 if node["current"] else 1,
        SafeString(' stroke-dasharray="4 3"') if not node["exists"] else "",
        x + BOX_W // 2, y + BOX_H // 2 + 4, "bold" if node["current"] else "normal", label, node["id"], shown,
    )  # fmt: skip
    if not node["exists"]:
        return rect
    return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[node["id"]]), rect)


def _depths(node_ids: list[str], edges: list[dict[str, str]]) -> dict[str, int]:
    """Each job's column: the longest chain of upstream jobs before it (the graph has no cycle:
    saving refuses one; a bound keeps a bad row from looping)."""
    depth = dict.fromkeys(node_ids, 0)
    for _round in range(len(node_ids)):
        changed = False
        for edge in edges:
            if depth[edge["to"]] < depth[edge["from"]] + 1:
                depth[edge["to"]] = depth[edge["from"]] + 1
                changed = True
        if not changed:
            break
    return depth
