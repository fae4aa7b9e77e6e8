"""System checks: what livenotify needs and is missing.

  livenotify.E001  the LIVENOTIFY setting is missing a key or has a bad value
  livenotify.E002  the extension is not installed in the database (and the migration that
                   would create it cannot, or already ran)
  livenotify.E003  the library is not in shared_preload_libraries
  livenotify.E004  a model a RegisterSource migration registered is not registered (or with
                   other columns)
  livenotify.W001  a recommended index is missing (catch-up and unread counts scan the table)
  livenotify.W002  a RegisterSource migration is not applied yet (run migrate)
  livenotify.W003  the database role may not call livenotify.send()
  livenotify.W004  the database could not be inspected

The database checks (E002-W004) run with a database: `manage.py check --database default`,
and `migrate` runs them itself.  The models checked are those of the RegisterSource
operations in the project's migrations.  A missing piece that the pending migration will add
is a warning, so that `migrate` is not stopped by what it is about to fix.
"""
from django.apps import apps as global_apps
from django.core import checks
from django.db import DatabaseError, connections, router
from django.db.migrations.loader import MigrationLoader

from . import _sql, conf
from .operations import RegisterSource, _columns


@checks.register("livenotify")
def check_settings(app_configs=None, **kwargs):
    errors = []

    def error(msg, hint=None):
        errors.append(checks.Error(msg, hint=hint, id="livenotify.E001"))

    from django.conf import settings
    if not getattr(settings, "LIVENOTIFY", None):
        error("settings.LIVENOTIFY is not set",
              hint='LIVENOTIFY = {"URL": "wss://app.example/ws", "JWT_KEY": ..., '
                   '"AUDIENCE": ..., "ISSUER": ...} (docs/django.md)')
        return errors
    c = conf.get()
    if not c["URL"]:
        error('LIVENOTIFY["URL"] is missing: the WebSocket URL of livenotifyd as the browser '
              'reaches it (e.g. "wss://app.example/ws" or "/ws")')
    alg = c["JWT_ALGORITHM"]
    if alg not in conf.ALGORITHMS:
        error(f'LIVENOTIFY["JWT_ALGORITHM"] is {alg!r}: livenotifyd takes HS256 or RS256')
    try:
        key = conf.jwt_key(c)
    except OSError as e:
        key = None
        error(f'LIVENOTIFY["JWT_KEY_FILE"] cannot be read: {e}')
    else:
        if not key:
            error('LIVENOTIFY["JWT_KEY"] (or "JWT_KEY_FILE") is missing: the daemon\'s '
                  "jwt_secret for HS256, the private key whose public key the daemon has "
                  "(jwt_public_key_file) for RS256")
    if key and alg == "HS256" and len(key.encode() if isinstance(key, str) else key) < conf.MIN_SECRET_BYTES:
        error(f'LIVENOTIFY["JWT_KEY"] is shorter than {conf.MIN_SECRET_BYTES} bytes: livenotifyd '
              "refuses such an HS256 secret")
    if key and alg == "RS256" and b"PRIVATE KEY" not in (key.encode() if isinstance(key, str) else key):
        error('LIVENOTIFY["JWT_KEY"] is not a PEM private key (RS256 signs with the private key)')
    if not c["AUDIENCE"] and not c["ISSUER"]:
        error('LIVENOTIFY["AUDIENCE"] and ["ISSUER"] are both missing: set them, and the same '
              "jwt_audience / jwt_issuer at the daemon (it refuses unscoped tokens off loopback)")
    try:
        lifetime = int(c["TOKEN_LIFETIME"])
    except (TypeError, ValueError):
        error(f'LIVENOTIFY["TOKEN_LIFETIME"] is not a number of seconds: {c["TOKEN_LIFETIME"]!r}')
    else:
        if not 0 < lifetime <= conf.DAEMON_MAX_LIFETIME:
            error(f'LIVENOTIFY["TOKEN_LIFETIME"] is {lifetime}: between 1 and the daemon\'s '
                  f"jwt_max_lifetime_s ({conf.DAEMON_MAX_LIFETIME} by default) seconds")
    return errors


def _sources(connection):
    """(app_label, migration name, RegisterSource, applied) of every RegisterSource operation
    in the project's migrations that migrates on this database."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    found = []
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        for op in migration.operations:
            if isinstance(op, RegisterSource) and router.allow_migrate(
                    connection.alias, app_label, model_name=op.model_name.lower()):
                found.append((app_label, name, op, (app_label, name) in loader.applied_migrations))
    return found


@checks.register("livenotify", checks.Tags.database)
def check_database(app_configs=None, databases=None, **kwargs):
    issues = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            issues += _check_database(alias, connection)
        except DatabaseError as e:
            issues.append(checks.Warning(f"livenotify: could not inspect database {alias!r}: {e}",
                                         id="livenotify.W004"))
    return issues


def _check_database(alias, connection):
    sources = _sources(connection)
    if not sources:
        return []
    issues = []
    pending = [s for s in sources if not s[3]]
    with connection.cursor() as cur:
        version = _sql.extension_version(cur)
        user, db, superuser = _sql.role(cur)
        grant_hint = (f'As a superuser, in database "{db}": CREATE EXTENSION livenotify; '
                      f"GRANT EXECUTE ON FUNCTION {_sql.REGISTER_SIGNATURE}, "
                      f'{_sql.SEND_SIGNATURE} TO "{user}";')
        if version is None:
            if len(pending) < len(sources):
                issues.append(checks.Error(
                    f'the livenotify extension is not installed in database "{db}" ({alias}), '
                    "but a RegisterSource migration is applied: nothing is captured",
                    hint=grant_hint, id="livenotify.E002"))
            elif not superuser:
                issues.append(checks.Error(
                    f'the livenotify extension is not installed in database "{db}" ({alias}) '
                    f'and role "{user}" may not create it: the RegisterSource migration will fail',
                    hint=grant_hint, id="livenotify.E002"))
        ok, detail = _sql.preloaded(cur, alias, version is not None)
        if ok is False:
            issues.append(checks.Error(
                f"livenotify is not in shared_preload_libraries of the server of {alias!r}: "
                f"nothing is delivered ({detail.splitlines()[0] if detail else ''})",
                hint="shared_preload_libraries = 'livenotify' in postgresql.conf, then restart "
                     "PostgreSQL (docs/operations.md)", id="livenotify.E003"))
        if version is not None and not _sql.may_execute(cur, _sql.SEND_SIGNATURE):
            issues.append(checks.Warning(
                f'role "{user}" may not call livenotify.send(): livenotify_django.send() fails',
                hint=f'As a superuser: GRANT EXECUTE ON FUNCTION {_sql.SEND_SIGNATURE} TO "{user}";',
                id="livenotify.W003"))
        for app_label, name, op, applied in sources:
            try:
                model = global_apps.get_model(app_label, op.model_name)
            except LookupError:
                continue  # the model was deleted by a later migration (its table with it)
            cols = _columns(model, op)
            label = f"{app_label}.{model.__name__}"
            if not applied:
                issues.append(checks.Warning(
                    f"{label} is not registered with livenotify yet: migration "
                    f"{app_label}.{name} is not applied", hint="manage.py migrate",
                    obj=model, id="livenotify.W002"))
                continue
            if not _sql.table_exists(cur, cols["table"]):
                continue
            reg = _sql.registration(cur, cols["table"]) if version is not None else None
            want = {k: cols[k] for k in ("user_column", "type_column", "id_column", "read_column")}
            register_sql = (
                f"SELECT livenotify.register('{cols['table']}', '{cols['user_column']}', "
                f"'{cols['type_column']}', '{cols['id_column']}', "
                + (f"'{cols['read_column']}'" if cols["read_column"] else "NULL")
                + f", '{{{','.join(op.skip_types)}}}');")
            if version is not None and reg is None:
                issues.append(checks.Error(
                    f"table {cols['table']} of {label} is not registered as a livenotify source "
                    f"(migration {app_label}.{name} is applied: it was unregistered since): "
                    "its rows reach no browser", hint=register_sql, obj=model,
                    id="livenotify.E004"))
            elif reg is not None and {k: reg[k] for k in want} != want:
                issues.append(checks.Error(
                    f"table {cols['table']} of {label} is registered with other columns "
                    f"({ {k: reg[k] for k in want} }) than the model's ({want})",
                    hint=f"SELECT livenotify.unregister('{reg['source']}'); {register_sql}",
                    obj=model, id="livenotify.E004"))
            if not op.indexes:
                continue
            by_id, unread = _sql.recommended_indexes(cur, cols["table"], cols["user_column"],
                                                     cols["id_column"], cols["read_column"])
            by_id_sql, unread_sql = _sql.index_sql(cols["table"], cols["user_column"],
                                                   cols["id_column"], cols["read_column"],
                                                   connection.ops.max_name_length())
            if not by_id:
                issues.append(checks.Warning(
                    f"{cols['table']} has no index on ({cols['user_column']}, {cols['id_column']}):"
                    " every catch-up of a reconnecting tab scans the table",
                    hint=by_id_sql + ";", obj=model, id="livenotify.W001"))
            if not unread:
                issues.append(checks.Warning(
                    f"{cols['table']} has no index on ({cols['user_column']}) WHERE NOT "
                    f"{cols['read_column']}: every unread count scans the user's rows",
                    hint=unread_sql + ";", obj=model, id="livenotify.W001"))
    return issues
