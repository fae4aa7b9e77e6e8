import json
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer


class NotificationConsumer(AsyncWebsocketConsumer):
    """One socket per browser tab: joins notifications_{user_id} and forwards what arrives."""

    async def connect(self):
        # The seed reads self.scope["user"] (AuthMiddlewareStack); see benchproj/asgi.py.
        query = parse_qs(self.scope["query_string"].decode())
        self.user_id = int(query["user"][0])
        self.group_name = f"notifications_{self.user_id}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def send_notification(self, event):
        await self.send(
            text_data=json.dumps(
                {
                    "type": "notification",
                    "notification": event["notification"],
                    "unread_count": event["unread_count"],
                }
            )
        )
