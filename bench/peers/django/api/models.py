from django.conf import settings
from django.db import models


class Notification(models.Model):
    """The seed's api_notification table (app label "api")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    type = models.CharField(max_length=50)
    title = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The two indexes docs/sql-api.md recommends. They serve every system's unread-count
        # query (the signal's, the Node bridge's, livenotifyd's), so all three get them.
        indexes = [
            models.Index(fields=["user", "id"], name="api_notif_user_id_idx"),
            models.Index(fields=["user"], name="api_notif_unread_idx", condition=models.Q(is_read=False)),
        ]

    def to_dict(self):
        return {
            "id": self.id,
            "user_id": self.user_id,
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "is_read": self.is_read,
            "created_at": self.created_at.isoformat(),
            "extra": self.extra,
        }
