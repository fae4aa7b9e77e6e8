from django.apps import AppConfig


class LiveNotifyConfig(AppConfig):
    name = "livenotify_django"
    label = "livenotify"
    verbose_name = "livenotify"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
