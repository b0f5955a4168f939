"""Hand-written SQL for the few reads on the hot paths: every API call's token, every submit's
template and admission, every task's end. The ORM builds a query's SQL anew each time it runs,
and there that cost more than the queries themselves: a submit took 11,400 Python calls, 6,600
with these five reads written as SQL. Portable SQL only (SQLite and PostgreSQL): names come from
the models, quoted by the backend; values are parameters, datetimes adapted as the ORM would."""

from django.db import connection


def name(model, field=None):
    """The model's table, or the column of its field, quoted for the database."""
    opts = model._meta
    return connection.ops.quote_name(opts.db_table if field is None else opts.get_field(field).column)


def placeholders(values):
    """"%s, %s, …" for an IN (…) of these values."""
    return ", ".join(["%s"] * len(values))


def stored_datetime(value):
    """A datetime as the database stores it, to compare a DateTimeField with."""
    return connection.ops.adapt_datetimefield_value(value)


def rows(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def scalar(sql, params):
    """The first column of the first row, or None when there is no row."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


# Namespaces of lock(): one per kind of thing serialised.
DISPATCH, STORAGE, ACCOUNTS = 7210431, 7210432, 7210433


def lock(namespace, key=0):
    """Hold, until the transaction ends, the lock on (namespace, key): on PostgreSQL an advisory
    lock; SQLite's IMMEDIATE transactions (see settings) already hold the whole database's."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, key])
