"""The alerts API: thin views that check the shape of a request and call the services."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import rules, services
from alerts.filters import AlertRuleFilter, ChannelFilter, IncidentFilter, NotificationFilter
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.serializers import (
    AlertRuleSerializer,
    AlertRuleWriteSerializer,
    ChannelSerializer,
    ChannelTestResultSerializer,
    ChannelWriteSerializer,
    IncidentSerializer,
    NotificationSerializer,
)
from jobs.models import Job


class ChannelViewSet(viewsets.ModelViewSet):
    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    permission_model = Channel
    filterset_class = ChannelFilter
    search_fields = ["name"]
    ordering_fields = ["id", "name", "kind", "created_at"]
    ordering = ["id"]

    def required_permission(self, request: Request) -> str | None:
        return "alerts.change_channel" if getattr(self, "action", None) == "test" else None

    @extend_schema(request=ChannelWriteSerializer, responses={201: ChannelSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        channel = services.channel_create(data=self._write_data(request, partial=False))
        return Response(ChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ChannelWriteSerializer, responses={200: ChannelSerializer})
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        channel = self.get_object()
        data = self._write_data(request, partial=bool(kwargs.get("partial", False)))
        return Response(ChannelSerializer(services.channel_update(channel=channel, data=data)).data)

    @extend_schema(request=ChannelWriteSerializer, responses={200: ChannelSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.channel_delete(channel=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ChannelTestResultSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message now; 200 with whether it went (``ok``) and, if not, why."""
        notification = services.channel_test(channel=self.get_object())
        ok = notification.status == Notification.Status.SENT
        return Response({"ok": ok, "error": None if ok else notification.error, "notification": notification.pk})

    def _write_data(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = ChannelWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Notification.objects.all()
    serializer_class = NotificationSerializer
    permission_model = Notification
    filterset_class = NotificationFilter
    search_fields: list[str] = []
    ordering_fields = ["id", "created_at", "sent_at"]
    ordering = ["-id"]


class AlertRuleViewSet(viewsets.ModelViewSet):
    # Only the ids of its jobs and channels are shown: a rule may name thousands of jobs.
    queryset = AlertRule.objects.prefetch_related(
        Prefetch("jobs", queryset=Job.objects.only("id").order_by("id")),
        Prefetch("channels", queryset=Channel.objects.only("id").order_by("id")),
    )
    serializer_class = AlertRuleSerializer
    permission_model = AlertRule
    filterset_class = AlertRuleFilter
    search_fields = ["name"]
    ordering_fields = ["id", "name", "event", "created_at"]
    ordering = ["id"]

    @extend_schema(request=AlertRuleWriteSerializer, responses={201: AlertRuleSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        rule = rules.rule_create(data=self._write_data(request, partial=False))
        return Response(self._shown(rule), status=status.HTTP_201_CREATED)

    @extend_schema(request=AlertRuleWriteSerializer, responses={200: AlertRuleSerializer})
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        rule = self.get_object()
        data = self._write_data(request, partial=bool(kwargs.get("partial", False)))
        return Response(self._shown(rules.rule_update(rule=rule, data=data)))

    @extend_schema(request=AlertRuleWriteSerializer, responses={200: AlertRuleSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        rules.rule_delete(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _shown(self, rule: AlertRule) -> dict[str, Any]:
        return AlertRuleSerializer(self.get_queryset().get(pk=rule.pk)).data  # its jobs and channels as saved

    def _write_data(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = AlertRuleWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer
    permission_model = Incident
    filterset_class = IncidentFilter
    search_fields: list[str] = []
    ordering_fields = ["id", "opened_at"]
    ordering = ["-id"]
