"""What the tests of SQLite table-rebuild migrations (015, 016) share: such a
migration drops and recreates tables inside its one transaction, so each test
snapshots the rows, re-applies the migration with `ehub migrate`, and checks
that nothing changed but the constraints' text, that the constraints still
refuse what they refused, and that a store whose tables a later migration
already changed is refused, naming the migration, with nothing changed."""
import os
import sqlite3

from tenants import db_rows, run_cli


def sqlite_db(srv):
    """A connection to the server's SQLite file (foreign keys off, as
    sqlite3 opens it; the server must be stopped for writes)."""
    return sqlite3.connect(os.path.join(srv.tmp, "data", "ehub.db"), timeout=10)


def snapshot(t, srv, tables):
    """{name: rows} for {name: SELECT ... ORDER BY id}."""
    return {name: db_rows(t, srv, sql) for name, sql in tables.items()}


def _schema(c):
    return c.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def reapply(t, srv, version):
    """Forgets that migration `version` ran and runs `ehub migrate`."""
    c = sqlite_db(srv)
    try:
        c.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
        c.commit()
    finally:
        c.close()
    return run_cli(t, srv, "migrate")


def assert_checks_refuse(c, before, checks, also_bad=()):
    """Each (table, column, good, bads) of checks: on the first row of the
    table, every bad value (and also_bad) is refused by a constraint and the
    good one accepted; rolled back after."""
    for table, col, good, bads in checks:
        rowid = before[table][0]["id"]
        for bad in list(bads) + list(also_bad):
            try:
                c.execute("UPDATE %s SET %s = ? WHERE id = ?" % (table, col), (bad, rowid))
            except sqlite3.IntegrityError as e:
                assert "constraint failed" in str(e), (table, col, bad, e)
            else:
                raise AssertionError("%s.%s accepted %r" % (table, col, bad))
        c.execute("UPDATE %s SET %s = ? WHERE id = ?" % (table, col), (good, rowid))
    c.rollback()


def assert_refuses_later_changes(t, srv, version, name, tables, changes, message):
    """For each schema change (as a later migration would make it), re-applying
    `version` fails with `message` on stderr and leaves the rows, the schema
    and schema_migrations as they were."""
    for change in changes:
        c = sqlite_db(srv)
        try:
            c.execute(change)
            c.commit()
            schema = _schema(c)
        finally:
            c.close()
        before = snapshot(t, srv, tables)
        r = reapply(t, srv, version)
        assert r.returncode != 0, (change, r.stdout)
        assert message in r.stderr, r.stderr
        assert snapshot(t, srv, tables) == before
        c = sqlite_db(srv)
        try:
            assert _schema(c) == schema, change
            assert c.execute("SELECT count(*) FROM schema_migrations WHERE version = ?", (version,)).fetchone() == (0,)
            c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)", (version, name))
            c.commit()
        finally:
            c.close()
