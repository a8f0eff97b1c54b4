from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    job = serializers.CharField(source="job_id", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "job", "run", "source", "client_ip", "reason", "details"]
        read_only_fields = fields
