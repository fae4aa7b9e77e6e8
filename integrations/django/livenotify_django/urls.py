"""include("livenotify_django.urls") under a prefix of your choice, e.g.
path("livenotify/", include("livenotify_django.urls")): the token view is livenotify:token."""
from django.urls import path

from . import views

app_name = "livenotify"
urlpatterns = [path("token/", views.token, name="token")]
