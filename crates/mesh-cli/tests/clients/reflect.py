"""SQLAlchemy reflection against `mesh serve`, for any SQLAlchemy version
(1.4, 2.0, 2.1): run with the version first on PYTHONPATH.

Reads a job as JSON on stdin: {"host", "port", "user", "password",
"drivers": [...]}. Prints {"version": ..., driver: {step: result}}, where
a result is {"ok": value} or {"error": text}.
"""
import json
import sys

import sqlalchemy as sa


def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:  # every failure is a result to assert on
        return {"error": str(e).splitlines()[0]}


def reflect(driver, job):
    url = sa.engine.URL.create(
        f"postgresql+{driver}",
        username=job["user"],
        password=job["password"],
        host=job["host"],
        port=job["port"],
        database="mesh",
    )
    engine = sa.create_engine(url)
    out = {}

    def one(sql):
        with engine.connect() as c:
            return c.execute(sa.text(sql)).scalar()

    out["connect"] = attempt(lambda: one("select 1"))
    insp = sa.inspect(engine)
    out["schemas"] = attempt(insp.get_schema_names)
    out["default_tables"] = attempt(insp.get_table_names)
    out["sales_tables"] = attempt(lambda: sorted(insp.get_table_names(schema="sales")))
    out["has_table"] = attempt(lambda: insp.has_table("orders", schema="sales"))
    out["columns"] = attempt(
        lambda: [[c["name"], str(c["type"]), c["nullable"]] for c in insp.get_columns("order_lines", schema="sales")]
    )
    out["pk"] = attempt(lambda: insp.get_pk_constraint("orders", schema="sales")["constrained_columns"])
    out["indexes"] = attempt(lambda: insp.get_indexes("orders", schema="sales"))
    out["foreign_keys"] = attempt(lambda: insp.get_foreign_keys("orders", schema="sales"))
    out["table_comment"] = attempt(lambda: insp.get_table_comment("orders", schema="sales")["text"])
    out["autoload"] = attempt(
        lambda: [c.name for c in sa.Table("orders", sa.MetaData(), schema="sales", autoload_with=engine).columns]
    )

    def stream():
        with engine.connect() as c:
            r = c.execution_options(stream_results=True).execute(sa.text("select order_id from sales.orders"))
            return len(r.fetchmany(5))

    out["stream_results"] = attempt(stream)
    if job.get("pandas"):
        import pandas as pd

        out["read_sql_table"] = attempt(lambda: list(pd.read_sql_table("orders", engine, schema="sales").shape))
        out["read_sql_chunks"] = attempt(
            lambda: sum(len(c) for c in pd.read_sql("select * from sales.orders", engine, chunksize=7))
        )
    engine.dispose()
    return out


def main():
    job = json.load(sys.stdin)
    result = {"version": sa.__version__}
    for driver in job["drivers"]:
        result[driver] = reflect(driver, job)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
