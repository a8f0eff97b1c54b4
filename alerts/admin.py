"""Channels and notifications in the Django admin. Saving and the test action go through
alerts.services; notifications are read-only (the delivery task writes them)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from alerts import services
from alerts.models import Channel, Notification
from alerts.secrets import shown_secret, shown_target


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "target", "secret", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # shown masked; sent back masked, the stored value is kept
            self.initial["target"] = shown_target(self.instance.target)
            self.initial["secret"] = shown_secret(self.instance.secret)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stored = Channel.objects.get(pk=self.instance.pk) if self.instance.pk else None
        try:
            self.cleaned_data = services.channel_clean(cleaned, stored=stored)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return self.cleaned_data

    def _post_clean(self) -> None:
        # The model's own checks are the service's; what it cleaned is what is saved.
        for name, value in self.cleaned_data.items():
            setattr(self.instance, name, value)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "shown_target", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test_message"]

    @admin.display(description="target")
    def shown_target(self, channel: Channel) -> str:
        return shown_target(channel.target)

    @admin.action(description="Send a test message", permissions=["change"])
    def send_test_message(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            notification = services.channel_test(channel=channel)
            if notification.status == Notification.Status.SENT:
                self.message_user(request, f"{channel.name}: the test message was sent.", messages.SUCCESS)
            else:
                self.message_user(request, f"{channel.name}: {notification.error}", messages.ERROR)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "channel", "job", "status", "attempts", "sent_at", "created_at"]
    list_filter = ["status", "event", "channel"]
    list_select_related = ["channel", "job"]
    raw_id_fields = ["job", "run"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False
