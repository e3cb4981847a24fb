"""Baseline for `cargo xtask bench server`: a minimal Scheduler on the official Python SDK.

Usage:
    python_scheduler.py --db PATH [--port P] [--stateless]

One tool, `scheduleConversation {topic, participants[], scheduledTime, timezone?,
durationMinutes?, metadata?, idempotencyKey?}` -> `{conversationId, status, scheduledTime,
created}`, doing what the Rust server's tool does to its store: one INSERT into one SQLite table
(`sqlite3` module, WAL, synchronous=NORMAL, idempotency key UNIQUE; the same key with the same
payload returns the first result with `created: false`, with another payload a tool error).

Deliberately minimal and favourable to Python: no authentication (the Rust server is measured
with bearer tokens on), no per-call log line (uvicorn's access log is off, log level WARNING),
the insert runs on the event loop (no thread hop). Served over Streamable HTTP by `mcp` 2.3.x
(`MCPServer`) on uvicorn, on 127.0.0.1 only; prints `listening on <url>` once ready.
"""

import argparse
import asyncio
import datetime
import hashlib
import json
import socket
import sqlite3
import sys
import uuid
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id               TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,
    topic            TEXT NOT NULL,
    participants     TEXT NOT NULL,
    scheduled_time   INTEGER NOT NULL,
    timezone         TEXT,
    duration_minutes INTEGER NOT NULL,
    metadata         TEXT NOT NULL,
    idempotency_key  TEXT UNIQUE,
    fingerprint      TEXT NOT NULL,
    created_at       INTEGER NOT NULL
)
"""

server = MCPServer("python-scheduler-baseline", version="1.0.0")
db: sqlite3.Connection


def open_db(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)
    return conn


def utc_millis(text: str) -> int:
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("scheduledTime: needs a UTC offset (RFC 3339)")
    return int(when.timestamp() * 1000)


def iso_utc(millis: int) -> str:
    when = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@server.tool(name="scheduleConversation")
async def schedule_conversation(
    topic: str,
    participants: list[str],
    scheduledTime: str,  # noqa: N803 (the wire name)
    timezone: str | None = None,
    durationMinutes: int = 30,  # noqa: N803
    metadata: dict[str, Any] | None = None,
    idempotencyKey: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    """Schedules a conversation (one INSERT; idempotency key checked in the same statement)."""
    if not topic.strip() or not participants:
        raise ValueError("topic and participants must not be empty")
    scheduled = utc_millis(scheduledTime)
    participants_json = json.dumps(participants)
    metadata_json = json.dumps(metadata or {}, sort_keys=True)
    fingerprint = hashlib.sha256(
        json.dumps(
            [topic, participants, scheduled, timezone, durationMinutes, metadata_json]
        ).encode()
    ).hexdigest()
    conversation_id = str(uuid.uuid4())
    now = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
    try:
        db.execute(
            "INSERT INTO conversations (id, status, topic, participants, scheduled_time, "
            "timezone, duration_minutes, metadata, idempotency_key, fingerprint, created_at) "
            "VALUES (?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                topic,
                participants_json,
                scheduled,
                timezone,
                durationMinutes,
                metadata_json,
                idempotencyKey,
                fingerprint,
                now,
            ),
        )
        created = True
    except sqlite3.IntegrityError:
        row = db.execute(
            "SELECT id, fingerprint, scheduled_time FROM conversations WHERE idempotency_key = ?",
            (idempotencyKey,),
        ).fetchone()
        if row is None or row[1] != fingerprint:
            raise ValueError("idempotencyKey was already used with different arguments")
        conversation_id, scheduled, created = row[0], row[2], False
    return {
        "conversationId": conversation_id,
        "status": "scheduled",
        "scheduledTime": iso_utc(scheduled),
        "created": created,
    }


def main() -> None:
    global db
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()
    db = open_db(args.db)
    app = server.streamable_http_app(stateless_http=args.stateless, host="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=1024)
    print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
    try:
        asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
