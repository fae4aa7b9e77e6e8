from django.urls import include, path

urlpatterns = [path("livenotify/", include("livenotify_django.urls"))]
