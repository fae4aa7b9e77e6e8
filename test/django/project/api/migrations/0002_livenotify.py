# Hand-written, as docs/django.md shows: the table becomes a livenotify source.
from django.db import migrations

from livenotify_django.operations import RegisterSource


class Migration(migrations.Migration):
    dependencies = [("api", "0001_initial")]
    operations = [
        RegisterSource("Notification", user_field="user", type_field="type", id_field="id",
                       read_field="is_read", skip_types=["event", "message"]),
    ]
