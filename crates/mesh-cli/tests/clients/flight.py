"""The ADBC Flight SQL driver against `mesh serve`, for the tests.

Reads a job as JSON on stdin: {"uri", "token", "user", "basic": bool,
"ca": PEM file to trust for grpc+tls, "steps": [...]}. A step is {"sql", "params", "csv"}: the query's rows are
fetched as Arrow and, when "csv" is given (`mesh query --format csv`),
compared with it under the fetched schema; or {"objects": true}: the
catalogs, schemas and tables GetObjects lists. Prints one JSON result per
step, or {"error", "status"}.
"""
import io
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.csv as pacsv


def connect(job):
    if job.get("basic"):
        kwargs = {"username": job["user"], "password": job["token"]}
    else:
        kwargs = {"adbc.flight.sql.authorization_header": "Bearer " + job["token"]}
    if job.get("ca"):
        with open(job["ca"]) as f:
            kwargs["adbc.flight.sql.client_option.tls_root_certs"] = f.read()
    return flight_sql.connect(job["uri"], db_kwargs=kwargs, autocommit=True)


def cell(v):
    return None if v is None else str(v)


def run(conn, step):
    try:
        if step.get("objects"):
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            return {
                "tables": sorted(
                    f"{c['catalog_name']}.{s['db_schema_name']}.{t['table_name']}"
                    for c in objects
                    for s in c["catalog_db_schemas"] or []
                    for t in s["db_schema_tables"] or []
                )
            }
        if "table_schema" in step:
            schema_name, table_name = step["table_schema"]
            schema = conn.adbc_get_table_schema(table_name, db_schema_filter=schema_name)
            decode = lambda m: {k.decode(): v.decode() for k, v in (m or {}).items()}
            return {
                "metadata": decode(schema.metadata),
                "fields": {f.name: decode(f.metadata) for f in schema},
            }
        cur = conn.cursor()
        cur.execute(step["sql"], step.get("params"))
        table = cur.fetch_arrow_table()
        cur.close()
        out = {
            "columns": table.column_names,
            "types": [str(t) for t in table.schema.types],
            "row_count": table.num_rows,
            "rows": [[cell(v) for v in row.values()] for row in table.slice(0, 50).to_pylist()],
        }
        if "csv" in step:
            # The CSV reader has no string_view (older servers sent views): read strings, then cast.
            readable = pa.schema(
                [
                    f.with_type(pa.string()) if f.type == pa.string_view() else f
                    for f in table.schema
                ]
            )
            expected = pacsv.read_csv(
                io.BytesIO(step["csv"].encode()),
                convert_options=pacsv.ConvertOptions(
                    column_types=readable, strings_can_be_null=True
                ),
            )
            expected = expected.cast(table.schema)
            out["equal_csv"] = expected.equals(table)
            if not out["equal_csv"]:
                out["csv_first"] = [[cell(v) for v in r.values()] for r in expected.slice(0, 3).to_pylist()]
        return out
    except adbc_driver_manager.Error as e:
        return {"error": str(e), "status": str(getattr(e, "status_code", ""))}


def main():
    job = json.load(sys.stdin)
    try:
        conn = connect(job)
    except adbc_driver_manager.Error as e:
        # Refused at connect: every step fails the same way.
        failed = {"error": str(e), "status": str(getattr(e, "status_code", ""))}
        print(json.dumps([failed for _ in job["steps"]]))
        return
    try:
        print(json.dumps([run(conn, step) for step in job["steps"]]))
    finally:
        try:
            conn.close()
        except adbc_driver_manager.Error:
            pass


main()
