"""The catalog queries RegisterSource and the system checks share.  All of them take a
cursor of the database concerned and only read."""
from django.db import DatabaseError, transaction
from django.db.backends.utils import truncate_name

REGISTER_SIGNATURE = "livenotify.register(regclass, name, name, name, name, text[], text)"
SEND_SIGNATURE = "livenotify.send(text, text, jsonb)"


def extension_version(cur):
    cur.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'livenotify'")
    row = cur.fetchone()
    return row[0] if row else None


def extension_available(cur):
    """Whether the server has the extension's files (the package is installed)."""
    cur.execute("SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'livenotify'")
    return cur.fetchone() is not None


def role(cur):
    """(current role, database, is superuser)."""
    cur.execute("SELECT current_user, current_database(), rolsuper FROM pg_catalog.pg_roles"
                " WHERE rolname = current_user")
    return cur.fetchone()


def may_execute(cur, signature):
    cur.execute("SELECT pg_catalog.has_function_privilege(%s, 'EXECUTE')", [signature])
    return cur.fetchone()[0]


def preloaded(cur, alias, installed):
    """(True | False | None, detail): whether the library is in shared_preload_libraries.

    With the extension installed, livenotify.check_loaded() (executable by anyone) answers
    exactly.  Without it, SHOW shared_preload_libraries, which only superusers and members
    of pg_read_all_settings may read: None when it cannot be told."""
    try:
        with transaction.atomic(using=alias):
            if installed:
                cur.execute("SELECT livenotify.check_loaded()")
                return True, ""
            cur.execute("SHOW shared_preload_libraries")
            libs = [x.strip().strip('"') for x in cur.fetchone()[0].split(",")]
    except DatabaseError as e:
        if installed:
            return False, str(e).strip()
        return None, str(e).strip()
    ok = any(x.rsplit("/", 1)[-1] in ("livenotify", "livenotify.so") for x in libs)
    return ok, "shared_preload_libraries = '%s'" % ", ".join(x for x in libs if x)


def table_exists(cur, table):
    cur.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", [quote(table)])
    return cur.fetchone()[0]


def registration(cur, table):
    """The source registered on `table` as a dict, or None."""
    cur.execute("SELECT source, user_column, type_column, id_column, read_column"
                " FROM livenotify.sources WHERE relid = %s::regclass", [quote(table)])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("source", "user_column", "type_column", "id_column", "read_column"), row))


def quote(ident):
    return '"%s"' % ident.replace('"', '""')


def index_names(table, user_column, id_column, max_length=63):
    return (truncate_name(f"{table}_{user_column}_{id_column}_livenotify", max_length),
            truncate_name(f"{table}_{user_column}_unread_livenotify", max_length))


def index_sql(table, user_column, id_column, read_column, max_length=63):
    """The CREATE INDEX statements of docs/sql-api.md's recommended indexes: (user, id) for
    catch-up, (user) WHERE NOT read for unread counts (None without a read column)."""
    by_id, unread = index_names(table, user_column, id_column, max_length)
    t, u = quote(table), quote(user_column)
    first = f"CREATE INDEX IF NOT EXISTS {quote(by_id)} ON {t} ({u}, {quote(id_column)})"
    second = None
    if read_column:
        second = (f"CREATE INDEX IF NOT EXISTS {quote(unread)} ON {t} ({u})"
                  f" WHERE NOT {quote(read_column)}")
    return first, second


def recommended_indexes(cur, table, user_column, id_column, read_column):
    """(has the (user, id) index, has the unread index), by shape, whatever their names: a
    valid btree index whose leading keys are (user, id) with no predicate, and one whose
    first key is the user column with the predicate NOT read."""
    cur.execute(
        "SELECT i.indkey::int2[], pg_catalog.pg_get_expr(i.indpred, i.indrelid), am.amname"
        "  FROM pg_catalog.pg_index i"
        "  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
        "  JOIN pg_catalog.pg_am am ON am.oid = c.relam"
        " WHERE i.indrelid = %s::regclass AND i.indisvalid", [quote(table)])
    indexes = cur.fetchall()
    cur.execute("SELECT attname, attnum FROM pg_catalog.pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [quote(table)])
    attnum = dict(cur.fetchall())
    u, i = attnum.get(user_column), attnum.get(id_column)
    want_pred = None
    if read_column:
        cur.execute("SELECT pg_catalog.format('(NOT %%I)', %s::text)", [read_column])
        want_pred = cur.fetchone()[0]
    by_id = any(am == "btree" and pred is None and list(keys[:2]) == [u, i]
                for keys, pred, am in indexes)
    unread = (not read_column) or any(
        am == "btree" and keys and keys[0] == u and pred == want_pred
        for keys, pred, am in indexes)
    return by_id, unread
