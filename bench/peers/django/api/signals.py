"""The seed's push path: post_save -> unread count -> channel layer group_send.

Written the way the seed and the Channels tutorials write it: a plain post_save receiver that
calls group_send synchronously through async_to_sync, with no transaction.on_commit. That is
the pattern livenotify replaces (it sends before the surrounding transaction commits, so a
rollback leaves a phantom; it never sees bulk_create or raw SQL). In the benchmark the ORM
writer runs in autocommit mode, where save() has already committed the row when post_save
fires, so leaving on_commit out costs this peer no latency and changes nothing it delivers.
"""
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Notification

# Delivered by other paths in the seed app (events, chat), never pushed from here.
SKIPPED_TYPES = {"event", "message"}


@receiver(post_save, sender=Notification)
def push_notification(sender, instance, created, **kwargs):
    if not created or instance.type in SKIPPED_TYPES:
        return
    unread = Notification.objects.filter(user_id=instance.user_id, is_read=False).count()
    channel_layer = get_channel_layer()
    async_to_sync(channel_layer.group_send)(
        f"notifications_{instance.user_id}",
        {
            "type": "send_notification",
            "notification": instance.to_dict(),
            "unread_count": unread,
        },
    )
