"""livenotify for Django: RegisterSource (migrations), send(), the token view, the client's
template tags and the system checks.  See docs/django.md."""
import json
import re

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections

__all__ = ["send", "user_key"]
__version__ = "0.1.0"

# The extension refuses anything else (docs/sql-api.md, "Sending ephemeral messages"); checked
# here too so that a typo raises before the statement, instead of aborting the caller's
# transaction with a database error.
_KIND = re.compile(r"[a-z0-9_.-]{1,63}")
_RESERVED = {"notification", "unread_count", "hello", "resync", "lost", "overflow"}


def user_key(user):
    """The key livenotify knows a user by: the user column's ::text form (docs/sql-api.md,
    "User keys").  For Django's integer and UUID primary keys that is str(pk)."""
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("livenotify_django: the user has no primary key (not saved yet?)")
    return str(pk)


def send(user, kind, payload=None, using=None):
    """Push an ephemeral message (e.g. a chat popup) to every tab of `user`.

    It is livenotify.send() on the connection of `using` (default: the default database),
    inside its current transaction: the tabs get it when that transaction commits, and never
    if it rolls back (a savepoint rolled back drops it too).  Outside atomic() it is sent at
    once.  The browser receives {"type": kind, **payload} (docs/protocol.md); nothing is
    stored.  `user` is a user instance or its primary key.
    """
    if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind in _RESERVED:
        raise ValueError(f"livenotify_django.send: invalid kind {kind!r}: 1 to 63 characters"
                         f" [a-z0-9_.-], not one of {sorted(_RESERVED)}")
    body = json.dumps({} if payload is None else payload, cls=DjangoJSONEncoder)
    with connections[using or DEFAULT_DB_ALIAS].cursor() as cur:
        cur.execute("SELECT livenotify.send(%s, %s, %s::jsonb)", [user_key(user), kind, body])
