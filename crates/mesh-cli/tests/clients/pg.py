"""A real Postgres driver (psycopg 3) against `mesh serve`, for the tests.

Reads a job as JSON on stdin: {"dsn": ..., "steps": [...]}; each step is
{"sql": ..., "params": [...], "prepare": bool} or
{"sql": ..., "cancel_after": seconds} (cancelled from another thread) or
{"backend_pid": true} (the connection's backend pid).
Prints one JSON result per step: {"columns", "rows"}, {"sqlstate", "error"}
or {"backend_pid"}.
"""
import json
import sys
import threading

import psycopg


def run(conn, step):
    if step.get("backend_pid"):
        return {"backend_pid": conn.info.backend_pid}
    cur = conn.cursor()
    timer = None
    if "cancel_after" in step:
        timer = threading.Timer(step["cancel_after"], conn.cancel)
        timer.start()
    try:
        cur.execute(step["sql"], step.get("params"), prepare=step.get("prepare"))
        columns = [d.name for d in cur.description] if cur.description else []
        rows = [[None if v is None else str(v) for v in row] for row in cur.fetchall()] if columns else []
        return {"columns": columns, "rows": rows}
    except psycopg.Error as e:
        return {"sqlstate": e.sqlstate, "error": str(e)}
    finally:
        if timer:
            timer.cancel()


def main():
    job = json.load(sys.stdin)
    try:
        conn = psycopg.connect(job["dsn"], autocommit=job.get("autocommit", True), connect_timeout=30)
    except psycopg.Error as e:
        print(json.dumps({"connect_error": str(e), "sqlstate": getattr(e, "sqlstate", None)}))
        return
    print(json.dumps([run(conn, step) for step in job["steps"]]))
    try:
        conn.close()
    except psycopg.Error:
        pass  # the server may have closed it (a test of stopping it)


main()
