"""{% load livenotify %}

{% livenotify_config %}  a <script type="application/json" id="livenotify-config"> holding the
                         daemon's URL, the token view's URL, the user key and the client's
                         static URL, for a page that starts the client itself;
{% livenotify_client %}  that, plus a module script that starts a LiveNotifyClient for the
                         logged-in user (nothing for an anonymous one) and hands it to the page
                         as window.livenotify and a "livenotify:ready" event on document.
"""
from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import json_script

from .. import conf, user_key

register = template.Library()

CLIENT_STATIC = "livenotify/livenotify.js"


def config_for(user):
    c = conf.get()
    authenticated = user is not None and user.is_authenticated
    return {
        "url": c["URL"],
        "tokenUrl": c["TOKEN_URL"] or reverse("livenotify:token"),
        "user": user_key(user) if authenticated else None,
        "clientUrl": static(CLIENT_STATIC),
    }


def _user(context):
    request = context.get("request")
    return getattr(request, "user", None) if request is not None else context.get("user")


@register.simple_tag(takes_context=True)
def livenotify_config(context, element_id="livenotify-config"):
    return json_script(config_for(_user(context)), element_id)


@register.inclusion_tag("livenotify/client.html", takes_context=True)
def livenotify_client(context, element_id="livenotify-config"):
    cfg = config_for(_user(context))
    return {"config": cfg, "element_id": element_id, "enabled": cfg["user"] is not None}
