"""What BI tools, notebooks and data frames do first, against `mesh serve`.

SQLAlchemy 2 with both Postgres drivers (psycopg 3 and psycopg2) reflects
the catalog, pandas reads through it, and both drivers open transactions,
savepoints and server-side cursors.

Reads a job as JSON on stdin: {"host", "port", "user", "password",
"stranger": {"user", "password"}}. Prints {driver: {step: result}}, where
a result is {"ok": value} or {"error": text, "sqlstate": code}.
"""
import json
import sys

import pandas as pd
import psycopg
import psycopg2
import sqlalchemy as sa


def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:  # every failure is a result to assert on
        orig = getattr(e, "orig", e)
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return {"error": str(e).splitlines()[0], "sqlstate": code}


def reflect(driver, job):
    url = sa.URL.create(
        f"postgresql+{driver}",
        username=job["user"],
        password=job["password"],
        host=job["host"],
        port=job["port"],
        database="mesh",
    )
    engine = sa.create_engine(url)
    out = {}
    out["connect"] = attempt(lambda: engine.connect().execute(sa.text("select 1")).scalar())
    insp = sa.inspect(engine)
    out["schemas"] = attempt(insp.get_schema_names)
    out["default_tables"] = attempt(insp.get_table_names)
    out["sales_tables"] = attempt(lambda: sorted(insp.get_table_names(schema="sales")))
    out["has_table"] = attempt(lambda: insp.has_table("orders", schema="sales"))
    out["has_no_table"] = attempt(lambda: insp.has_table("nope", schema="sales"))
    out["foreign_keys"] = attempt(lambda: insp.get_foreign_keys("orders", schema="sales"))
    out["columns"] = attempt(
        lambda: [
            [c["name"], str(c["type"]), c["nullable"]] for c in insp.get_columns("orders", schema="sales")
        ]
    )
    out["pk"] = attempt(lambda: insp.get_pk_constraint("orders", schema="sales"))
    out["composite_pk"] = attempt(lambda: insp.get_pk_constraint("carrier_performance", schema="logistics"))
    out["comments"] = attempt(
        lambda: [c["comment"] for c in insp.get_columns("orders", schema="sales")]
    )
    out["table_comment"] = attempt(lambda: insp.get_table_comment("orders", schema="sales"))
    out["decimal"] = attempt(
        lambda: [
            str(c["type"]) for c in insp.get_columns("order_lines", schema="sales") if c["name"] == "amount"
        ]
    )
    out["indexes"] = attempt(lambda: insp.get_indexes("orders", schema="sales"))
    out["autoload"] = attempt(
        lambda: [c.name for c in sa.Table("orders", sa.MetaData(), schema="sales", autoload_with=engine).columns]
    )
    out["read_sql_table"] = attempt(lambda: list(pd.read_sql_table("orders", engine, schema="sales").shape))

    def count():
        with engine.connect() as c:
            return c.execute(sa.text("select count(*) from sales.orders")).scalar()

    out["count"] = attempt(count)
    out["read_sql_chunks"] = attempt(
        lambda: [len(chunk) for chunk in pd.read_sql("select * from sales.orders", engine, chunksize=7)]
    )

    def stream():
        with engine.connect() as c:
            result = c.execution_options(stream_results=True, max_row_buffer=5).execute(
                sa.text("select order_id from sales.orders order by order_id")
            )
            first = result.fetchmany(5)
            rest = result.fetchall()
            return [len(first), len(rest), type(first[0][0]).__name__]

    out["stream_results"] = attempt(stream)

    def search_path():
        with engine.connect() as c:
            c.execute(sa.text("set search_path to sales"))
            return [
                c.execute(sa.text("select count(*) from orders")).scalar(),
                c.execute(sa.text("show search_path")).scalar(),
                c.execute(sa.text("select current_schema()")).scalar(),
                sorted(sa.inspect(c).get_table_names()),
            ]

    out["search_path"] = attempt(search_path)
    engine.dispose()
    return out


def connect(driver, job, who=None):
    who = who or job
    args = dict(host=job["host"], port=job["port"], user=who["user"], password=who["password"], dbname="mesh")
    if driver == "psycopg":
        return psycopg.connect(**args, connect_timeout=30)
    return psycopg2.connect(**args, connect_timeout=30)


def cursors(driver, job):
    out = {}

    def named():
        conn = connect(driver, job)
        try:
            cur = conn.cursor(name="orders_cursor")
            cur.execute("select order_id from sales.orders where order_id > %s order by order_id", (0,))
            first = cur.fetchmany(3)
            rest = cur.fetchall()
            cur.close()
            conn.commit()
            return [len(first), len(rest), type(first[0][0]).__name__]
        finally:
            conn.close()

    out["named_cursor"] = attempt(named)

    def raw_cursor():
        conn = connect(driver, job)
        try:
            cur = conn.cursor()
            cur.execute("declare c cursor for select order_id from sales.orders order by order_id")
            cur.execute("fetch 2 from c")
            two = cur.fetchall()
            cur.execute("fetch all from c")
            rest = cur.fetchall()
            cur.execute("close c")
            conn.commit()
            return [len(two), len(rest)]
        finally:
            conn.close()

    out["declare_fetch_close"] = attempt(raw_cursor)

    def stranger():
        conn = connect(driver, job, job["stranger"])
        try:
            cur = conn.cursor(name="private")
            cur.execute("select * from customers.profiles")
            return cur.fetchall()
        finally:
            conn.close()

    out["stranger_cursor"] = attempt(stranger)

    def savepoints():
        conn = connect(driver, job)
        try:
            cur = conn.cursor()
            cur.execute("begin")
            cur.execute("savepoint a")
            failed = None
            try:
                cur.execute("select * from sales.no_such_table")
            except Exception as e:
                failed = type(e).__name__
            cur.execute("rollback to savepoint a")
            cur.execute("release savepoint a")
            cur.execute("select count(*) from sales.orders")
            n = cur.fetchone()[0]
            conn.rollback()
            return [failed is not None, n]
        finally:
            conn.close()

    out["savepoints"] = attempt(savepoints)

    if driver == "psycopg":

        def nested():
            with connect(driver, job) as conn:
                with conn.transaction():
                    with conn.transaction():
                        n = conn.execute("select count(*) from sales.orders").fetchone()[0]
                return n

        out["nested_transactions"] = attempt(nested)
    out.update(copies(driver, job))
    return out


COPY_QUERY = "(SELECT order_id, status, 'a,\"b' AS odd, NULL AS nothing FROM sales.orders ORDER BY order_id LIMIT 3)"


def copies(driver, job):
    """COPY … TO STDOUT in text, CSV and binary, as each driver reads it."""
    out = {}
    if driver == "psycopg":

        def text(options):
            with connect(driver, job) as conn, conn.cursor() as cur:
                with cur.copy(f"COPY {COPY_QUERY} TO STDOUT {options}") as copy:
                    data = b"".join(bytes(b) for b in copy)
                return [data.decode(), cur.rowcount]

        def binary():
            with connect(driver, job) as conn, conn.cursor() as cur:
                with cur.copy(f"COPY {COPY_QUERY} TO STDOUT (FORMAT binary)") as copy:
                    copy.set_types(["int8", "text", "text", "text"])
                    return [list(r) for r in copy.rows()]

        def denied():
            stranger = connect(driver, job, job["stranger"])
            with stranger, stranger.cursor() as cur:
                with cur.copy("COPY customers.profiles TO STDOUT") as copy:
                    return b"".join(bytes(b) for b in copy).decode()

        out["copy_text"] = attempt(lambda: text(""))
        out["copy_csv"] = attempt(lambda: text("WITH (FORMAT csv, HEADER)"))
        out["copy_binary"] = attempt(binary)
        out["copy_denied"] = attempt(denied)
    else:

        def expert():
            import io

            conn = connect(driver, job)
            try:
                buf = io.StringIO()
                conn.cursor().copy_expert(f"COPY {COPY_QUERY} TO STDOUT WITH CSV HEADER", buf)
                return buf.getvalue()
            finally:
                conn.close()

        out["copy_csv"] = attempt(expert)
    return out


def main():
    job = json.load(sys.stdin)
    result = {}
    for driver in ["psycopg", "psycopg2"]:
        result[driver] = reflect(driver, job)
        result[driver].update(cursors(driver, job))
    print(json.dumps(result, default=str))


main()
