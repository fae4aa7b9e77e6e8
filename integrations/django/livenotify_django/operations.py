"""RegisterSource: a migration operation that registers a model's table as a livenotify
source (docs/django.md, docs/sql-api.md "Registering a table")."""
from django.db import NotSupportedError, router
from django.db.migrations.operations.base import Operation

from . import _sql


class MigrationError(Exception):
    """The database cannot take the registration as it is; the message says what to do."""


def _columns(model, op):
    """The model's table and the column names behind the operation's field names (a foreign
    key `user` is the column `user_id`; a field with db_column its own)."""
    meta = model._meta

    def column(name):
        if name is None:
            return None
        return meta.get_field(name).column

    return {
        "table": meta.db_table,
        "user_column": column(op.user_field),
        "type_column": column(op.type_field),
        "id_column": column(op.id_field) if op.id_field else meta.pk.column,
        "read_column": column(op.read_field),
    }


class RegisterSource(Operation):
    """Register `model_name`'s table with livenotify.register(); unregister on reverse.

    Forwards it creates the extension when it is missing and the migrating role may (a
    superuser: the extension needs one), registers the table with the columns behind the
    given field names, and creates the two recommended indexes unless indexes of the same
    shape exist.  Backwards it unregisters the source and drops the indexes it named.  The
    model's state is not changed (no autodetector changes follow from it).
    """

    reversible = True
    reduces_to_sql = True
    # Database-only: the migration state (the model) is unchanged.
    elidable = False

    def __init__(self, model_name, user_field="user", type_field="type", id_field="id",
                 read_field="is_read", skip_types=("event", "message"), source=None,
                 indexes=True):
        self.model_name = model_name
        self.user_field = user_field
        self.type_field = type_field
        self.id_field = id_field
        self.read_field = read_field
        self.skip_types = list(skip_types)
        self.source = source
        self.indexes = indexes

    def deconstruct(self):
        kwargs = {}
        defaults = {"user_field": "user", "type_field": "type", "id_field": "id",
                    "read_field": "is_read", "skip_types": ["event", "message"],
                    "source": None, "indexes": True}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                kwargs[name] = getattr(self, name)
        return ("livenotify_django.operations.RegisterSource", [self.model_name], kwargs)

    def describe(self):
        return f"Register {self.model_name} as a livenotify source"

    @property
    def migration_name_fragment(self):
        return f"livenotify_{self.model_name.lower()}"

    def state_forwards(self, app_label, state):
        pass

    def _model(self, app_label, schema_editor, state):
        model = state.apps.get_model(app_label, self.model_name)
        if not router.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        if schema_editor.connection.vendor != "postgresql":
            raise NotSupportedError("livenotify_django.RegisterSource needs PostgreSQL (the "
                                    f"database {schema_editor.connection.alias!r} is "
                                    f"{schema_editor.connection.vendor})")
        return model

    def source_name(self, cols):
        return self.source or cols["table"]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = self._model(app_label, schema_editor, to_state)
        if model is None:
            return
        cols = _columns(model, self)
        source = self.source_name(cols)
        conn = schema_editor.connection
        max_length = conn.ops.max_name_length()
        if schema_editor.collect_sql:
            # sqlmigrate: the statements a superuser would run, without looking at the database.
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS livenotify")
            self._register(schema_editor, cols, source)
            self._create_indexes(schema_editor, cols, max_length, None)
            return
        with conn.cursor() as cur:
            self._ensure_extension(schema_editor, cur)
            existing = _sql.registration(cur, cols["table"])
            if existing is None:
                user, _, _ = _sql.role(cur)
                if not _sql.may_execute(cur, _sql.REGISTER_SIGNATURE):
                    raise MigrationError(
                        f'role "{user}" may not call livenotify.register() (it is not granted to '
                        f"PUBLIC). As a superuser, run: GRANT EXECUTE ON FUNCTION "
                        f'{_sql.REGISTER_SIGNATURE} TO "{user}"; then migrate again.')
                self._register(schema_editor, cols, source)
            else:
                want = dict(cols, source=source)
                del want["table"]
                if existing != want:
                    raise MigrationError(
                        f"table {cols['table']} is already registered as a livenotify source "
                        f"with other settings: {existing}, this migration wants {want}. "
                        f"Unregister it first: SELECT livenotify.unregister('{existing['source']}');")
                # Registered by hand with the same columns (the manual migration of older
                # docs, a restored dump): nothing to do.
            self._create_indexes(schema_editor, cols, max_length, cur)

    def _ensure_extension(self, schema_editor, cur):
        if _sql.extension_version(cur) is not None:
            return
        user, db, superuser = _sql.role(cur)
        if not _sql.extension_available(cur):
            raise MigrationError(
                "the PostgreSQL server has no livenotify extension: install it on the server "
                "(docs/operations.md) and add it to shared_preload_libraries, then migrate again")
        if not superuser:
            raise MigrationError(
                f'the livenotify extension is not installed in database "{db}", and role '
                f'"{user}" may not create it (CREATE EXTENSION livenotify needs a superuser). '
                f'As a superuser, in database "{db}", run: CREATE EXTENSION livenotify; '
                f'GRANT EXECUTE ON FUNCTION {_sql.REGISTER_SIGNATURE}, {_sql.SEND_SIGNATURE} '
                f'TO "{user}"; then migrate again.')
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS livenotify")

    def _register(self, schema_editor, cols, source):
        schema_editor.execute(
            "SELECT livenotify.register(%s::regclass, %s, %s, %s, %s, %s::text[], %s)",
            [_sql.quote(cols["table"]), cols["user_column"], cols["type_column"],
             cols["id_column"], cols["read_column"], self.skip_types, source])

    def _create_indexes(self, schema_editor, cols, max_length, cur):
        if not self.indexes:
            return
        by_id_sql, unread_sql = _sql.index_sql(cols["table"], cols["user_column"],
                                               cols["id_column"], cols["read_column"], max_length)
        have_by_id, have_unread = (False, False)
        if cur is not None:
            have_by_id, have_unread = _sql.recommended_indexes(
                cur, cols["table"], cols["user_column"], cols["id_column"], cols["read_column"])
        if not have_by_id:
            schema_editor.execute(by_id_sql)
        if unread_sql and not have_unread:
            schema_editor.execute(unread_sql)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = self._model(app_label, schema_editor, from_state)
        if model is None:
            return
        cols = _columns(model, self)
        source = self.source_name(cols)
        names = _sql.index_names(cols["table"], cols["user_column"], cols["id_column"],
                                 schema_editor.connection.ops.max_name_length())
        if schema_editor.collect_sql:
            schema_editor.execute("SELECT livenotify.unregister(%s)", [source])
        else:
            with schema_editor.connection.cursor() as cur:
                existing = None
                if _sql.extension_version(cur) is not None:
                    existing = _sql.registration(cur, cols["table"])
            # Already gone (unregistered by hand): nothing to undo.
            if existing is not None:
                schema_editor.execute("SELECT livenotify.unregister(%s)", [existing["source"]])
        if self.indexes:
            for name in names:
                schema_editor.execute(f"DROP INDEX IF EXISTS {_sql.quote(name)}")
