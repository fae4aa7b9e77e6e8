"""ASGI entry point served by Daphne: HTTP through Django, WebSockets through the consumer."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")
# get_asgi_application() first: it runs django.setup(), which the consumer's imports need.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from api.routing import websocket_urlpatterns  # noqa: E402

# The seed wraps the router in AuthMiddlewareStack and takes the user from the session. The
# benchmark has no sessions: the consumer takes the user id from the query string instead,
# as livenotifyd (auth = none) and the Node bridge do, so no system pays for authentication.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
