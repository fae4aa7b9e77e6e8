from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import conf
from .tokens import issue_token


@never_cache  # a token is per user and short-lived: no proxy or browser cache may keep it
@require_GET
def token(request):
    """{"token": JWT, "expires_at": unix time, "url": the daemon's URL} for the logged-in user;
    401 for anyone else.  The browser client calls it on every (re)connect."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "authentication required"}, status=401)
    tok, exp = issue_token(request.user)
    return JsonResponse({"token": tok, "expires_at": exp, "url": conf.get()["URL"]})
