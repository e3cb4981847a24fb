"""Interop peer: a second, independent implementation of the Scheduler tool contract.

Written on the official Python SDK (`mcp` 2.3.x, `MCPServer`) from the contract in
`crates/scheduler/src/domain.rs`, so the interop tests can run the same `SchedulerService`
flow against it and against our Rust server (`crates/scheduler-server`).

Usage:
    python_scheduler_server.py [--port P] [--stateless]

`--stateless` serves stateless Streamable HTTP with JSON responses (no session, no SSE).
Listens on 127.0.0.1 only (an ephemeral port unless `--port` is given) and prints
`listening on <url>` once the socket is bound.

Tools (camelCase arguments and results, input and output JSON Schemas, results as
`structuredContent` plus the same JSON as text):

- `scheduleConversation {topic, participants[], scheduledTime, timezone?, durationMinutes?,
  metadata?, idempotencyKey?}` -> `{conversationId, status, scheduledTime, created}`
- `getConversationStatus {conversationId}` -> conversation details
- `listConversations {status?, from?, to?, limit?, cursor?}` -> `{conversations, nextCursor?}`,
  ordered by scheduled time then id; `limit` 1 to 500, default 50; `nextCursor` is opaque
- `cancelConversation {conversationId}` -> details (only while `scheduled` or `running`)
- `rescheduleConversation {conversationId, scheduledTime}` -> details (only while `scheduled`)

Semantics follow the Rust server: every bad argument is a tool error (`isError: true`) whose
text names the field in the Rust server's words, with `{error, message, field}` as structured
content (arguments of the wrong JSON type are rejected by the SDK's own validation, in its
wording, which names the field too); times are RFC 3339 with an offset,
kept to the millisecond (finer digits truncated, also before 1970) and returned in UTC with a
`Z`; `timezone` must be a known IANA zone (`zoneinfo`); `durationMinutes` defaults to 30
(1 to 1440); the same idempotency key with the same payload returns the original result with
`created: false`, with another payload it is a tool error; unknown ids are tool errors.

Storage is in memory (dicts). Nothing runs due conversations: there is no dispatcher, so a
conversation stays `scheduled` until cancelled. `GET /ping` answers 200 `{"status": "ok"}`.
"""

import argparse
import asyncio
import base64
import datetime
import functools
import json
import os
import re
import socket
import sys
import time
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import NotRequired, TypedDict  # pydantic needs these on Python < 3.12

# Limits every implementation enforces (`scheduler::domain::limits`).
TOPIC_CHARS = 500
PARTICIPANTS = 100
PARTICIPANT_CHARS = 320
DURATION_MINUTES = 24 * 60
DEFAULT_DURATION_MINUTES = 30
METADATA_BYTES = 16 * 1024
IDEMPOTENCY_KEY_BYTES = 255
LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 50

Status = Literal["scheduled", "running", "completed", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

# RFC 3339 `date-time` (with the offset required). Like the Rust side (jiff), a space or a
# lowercase `t` may separate date and time, and at most nine fractional digits are accepted.
RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class ScheduleResult(TypedDict):
    """`scheduleConversation` result."""

    conversationId: str
    status: Status
    scheduledTime: str
    created: bool


class ConversationDetails(TypedDict):
    """Everything known about one conversation."""

    conversationId: str
    status: Status
    topic: str
    participants: list[str]
    scheduledTime: str
    timezone: NotRequired[str]
    durationMinutes: int
    attempts: int
    startedAt: NotRequired[str]
    completedAt: NotRequired[str]
    lastError: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]


class ConversationPage(TypedDict):
    """`listConversations` result."""

    conversations: list[ConversationDetails]
    nextCursor: NotRequired[str]


class ContractError(Exception):
    """A tool error as the Rust server reports it: `isError: true`, the message as text, and
    `{error, message, field?}` as structured content."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def result(self) -> CallToolResult:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return CallToolResult(
            content=[TextContent(type="text", text=self.message)],
            structured_content=body,
            is_error=True,
        )


class Invalid(ContractError):
    """A missing or invalid argument; the message names it as the Rust server does."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("invalid_argument", f"invalid argument `{field}`: {message}", field)


class Conversation:
    """One stored conversation (times in milliseconds since the epoch, UTC)."""

    def __init__(
        self,
        conversation_id: str,
        topic: str,
        participants: list[str],
        scheduled_ms: int,
        timezone: str | None,
        duration_minutes: int,
        metadata: dict[str, Any],
        idempotency_key: str | None,
        fingerprint: str,
    ) -> None:
        self.id = conversation_id
        self.status: str = "scheduled"
        self.topic = topic
        self.participants = participants
        self.scheduled_ms = scheduled_ms
        self.timezone = timezone
        self.duration_minutes = duration_minutes
        self.metadata = metadata
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.attempts = 0
        self.started_ms: int | None = None
        self.completed_ms: int | None = None
        self.last_error: str | None = None

    def details(self) -> ConversationDetails:
        """The public view (`ConversationDetails`): absent optional fields are left out."""
        out: ConversationDetails = {
            "conversationId": self.id,
            "status": self.status,  # type: ignore[typeddict-item]
            "topic": self.topic,
            "participants": list(self.participants),
            "scheduledTime": format_ms(self.scheduled_ms),
            "durationMinutes": self.duration_minutes,
            "attempts": self.attempts,
        }
        if self.timezone is not None:
            out["timezone"] = self.timezone
        if self.started_ms is not None:
            out["startedAt"] = format_ms(self.started_ms)
        if self.completed_ms is not None:
            out["completedAt"] = format_ms(self.completed_ms)
        if self.last_error is not None:
            out["lastError"] = self.last_error
        if self.metadata:
            out["metadata"] = self.metadata
        return out


# The store. Every tool is `async def` without an `await` inside, so each call runs to
# completion on the event loop: no two calls ever interleave.
CONVERSATIONS: dict[str, Conversation] = {}
BY_KEY: dict[str, str] = {}

server = MCPServer(
    "python-scheduler-server",
    version="1.0.0",
    instructions=(
        "Schedules conversations. Use scheduleConversation with an idempotencyKey so a retry "
        "never schedules twice; check progress with getConversationStatus."
    ),
)


# ---- time ------------------------------------------------------------------------------


def parse_ms(field: str, value: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp with an offset, truncated
    (rounded down) to the millisecond; an `Invalid` naming `field` otherwise."""
    match = RFC3339.fullmatch(value)

    def invalid() -> Invalid:
        return Invalid(
            field,
            f"{json.dumps(value)} is not an RFC 3339 timestamp with a UTC offset "
            "(e.g. 2026-12-01T09:30:00+01:00 or 2026-12-01T08:30:00Z)",
        )

    if match is None:
        raise invalid()
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    if match.group(8):
        offset_minutes = 0
    else:
        oh, om = int(match.group(10)), int(match.group(11))
        if oh > 23 or om > 59:
            raise invalid()
        offset_minutes = (oh * 60 + om) * (-1 if match.group(9) == "-" else 1)
    try:
        local = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise invalid() from None
    seconds = int(local.timestamp()) - offset_minutes * 60
    millis = int((fraction + "000")[:3])
    return seconds * 1000 + millis


def format_ms(ms: int) -> str:
    """UTC RFC 3339 with a `Z`, fractional digits only as needed (as jiff prints it)."""
    seconds, millis = divmod(ms, 1000)
    when = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        seconds=seconds
    )
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid7() -> str:
    """A UUIDv7 (time-ordered), as the Rust server's ids are."""
    rand_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF
    value = ((now_ms() & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64)
    value |= (0b10 << 62) | (int.from_bytes(os.urandom(8), "big") >> 2)
    return str(uuid.UUID(int=value))


# ---- validation ------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (serde_json's `Map` without `preserve_order`)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def validate_schedule(
    topic: str,
    participants: list[str],
    scheduled_time: str,
    timezone: str | None,
    duration_minutes: int | None,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """`ScheduleConversation::validate`: the first bad argument is named."""
    topic = topic.strip()
    if not topic:
        raise Invalid("topic", "must not be empty")
    if len(topic) > TOPIC_CHARS:
        raise Invalid("topic", f"must be at most {TOPIC_CHARS} characters")
    if not participants:
        raise Invalid("participants", "needs at least one participant")
    if len(participants) > PARTICIPANTS:
        raise Invalid("participants", f"at most {PARTICIPANTS} participants")
    trimmed = []
    for i, p in enumerate(participants):
        p = p.strip()
        if not p:
            raise Invalid(f"participants[{i}]", "must not be empty")
        if len(p) > PARTICIPANT_CHARS:
            raise Invalid(f"participants[{i}]", f"must be at most {PARTICIPANT_CHARS} characters")
        trimmed.append(p)
    scheduled_ms = parse_ms("scheduledTime", scheduled_time)
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise Invalid(
                "timezone", f"{json.dumps(timezone)} is not a known IANA time zone"
            ) from None
    duration = DEFAULT_DURATION_MINUTES if duration_minutes is None else duration_minutes
    if not 1 <= duration <= DURATION_MINUTES:
        raise Invalid("durationMinutes", f"must be between 1 and {DURATION_MINUTES}")
    meta = json.loads(canonical_json(metadata or {}))
    size = len(canonical_json(meta).encode())
    if size > METADATA_BYTES:
        raise Invalid(
            "metadata", f"is {size} bytes serialized; at most {METADATA_BYTES} allowed"
        )
    if idempotency_key is not None:
        raw = idempotency_key.encode()
        if not raw or len(raw) > IDEMPOTENCY_KEY_BYTES:
            raise Invalid("idempotencyKey", f"must be 1 to {IDEMPOTENCY_KEY_BYTES} bytes")
        if not all(0x21 <= b <= 0x7E for b in raw):
            raise Invalid("idempotencyKey", "must be visible ASCII without spaces")
    fingerprint = canonical_json(
        {
            "topic": topic,
            "participants": trimmed,
            "scheduledTime": format_ms(scheduled_ms),
            "timezone": timezone,
            "durationMinutes": duration,
            "metadata": meta,
        }
    )
    return {
        "topic": topic,
        "participants": trimmed,
        "scheduled_ms": scheduled_ms,
        "timezone": timezone,
        "duration_minutes": duration,
        "metadata": meta,
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
    }


def find(conversation_id: str) -> Conversation:
    conversation = CONVERSATIONS.get(conversation_id)
    if conversation is None:
        raise ContractError(
            "not_found",
            f"no conversation with id {json.dumps(conversation_id)}",
            "conversationId",
        )
    return conversation


def refuse(conversation: Conversation, action: str) -> ContractError:
    return ContractError(
        "invalid_transition",
        f"cannot {action} conversation {conversation.id}: it is {conversation.status}",
        "conversationId",
    )


def encode_cursor(c: Conversation) -> str:
    raw = f"{c.scheduled_ms}:{c.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    bad = ContractError("invalid_argument", "cursor is not one this server issued", "cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, _, conversation_id = text.partition(":")
        if not conversation_id:
            raise bad
        return int(ms), conversation_id
    except (ValueError, UnicodeDecodeError):
        raise bad from None


# ---- tools -----------------------------------------------------------------------------


def contract_tool(
    name: str, description: str, wire_names: dict[str, str] | None = None
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Registers a tool whose `ContractError`s become Rust-shaped tool errors.

    `wire_names` maps a wire argument name that is not a Python identifier (`from`) to the
    parameter carrying it (`from_`, declared with that alias): the SDK passes arguments by
    their alias, so the wrapper renames them before the call.
    """
    renames = wire_names or {}

    def decorator(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)  # the SDK reads the schemas from the wrapped signature
        async def tool(**arguments: Any) -> Any:
            for wire, param in renames.items():
                if wire in arguments:
                    arguments[param] = arguments.pop(wire)
            try:
                return await fn(**arguments)
            except ContractError as err:
                return err.result()

        server.add_tool(tool, name=name, description=description)
        return tool

    return decorator

ConversationId = Annotated[StrictStr, Field(description="The conversation's id.")]


@contract_tool(
    "scheduleConversation",
    (
        "Schedule a conversation. Pass an idempotencyKey to make retries safe: the same key "
        "with the same arguments returns the original conversation (created: false)."
    ),
)
async def schedule_conversation(
    topic: Annotated[
        StrictStr, Field(description="What the conversation is about (1 to 500 characters).")
    ],
    participants: Annotated[
        list[StrictStr], Field(description="Who takes part (1 to 100 non-empty entries).")
    ],
    scheduledTime: Annotated[  # noqa: N803 (the wire name)
        StrictStr,
        Field(description="When it starts: RFC 3339 with a UTC offset, kept to the millisecond."),
    ],
    timezone: Annotated[
        StrictStr | None, Field(description="IANA time zone, e.g. Europe/Paris.")
    ] = None,
    durationMinutes: Annotated[  # noqa: N803
        StrictInt | None, Field(description="Length in minutes (1 to 1440). Default 30.")
    ] = None,
    metadata: Annotated[
        dict[str, Any] | None, Field(description="Free-form JSON object, at most 16 KiB.")
    ] = None,
    idempotencyKey: Annotated[  # noqa: N803
        StrictStr | None,
        Field(description="The same key with the same arguments returns the original result."),
    ] = None,
) -> ScheduleResult:
    """Schedules a conversation (idempotently when a key is given)."""
    valid = validate_schedule(
        topic,
        participants,
        scheduledTime,
        timezone,
        durationMinutes,
        metadata,
        idempotencyKey,
    )
    key = valid["idempotency_key"]
    if key is not None and key in BY_KEY:
        existing = CONVERSATIONS[BY_KEY[key]]
        if existing.fingerprint != valid["fingerprint"]:
            raise ContractError(
                "idempotency_conflict",
                f"idempotencyKey was already used for conversation {existing.id} with "
                "different arguments; use a new key for a new conversation",
                "idempotencyKey",
            )
        return {
            "conversationId": existing.id,
            "status": existing.status,  # type: ignore[typeddict-item]
            "scheduledTime": format_ms(existing.scheduled_ms),
            "created": False,
        }
    conversation = Conversation(
        uuid7(),
        valid["topic"],
        valid["participants"],
        valid["scheduled_ms"],
        valid["timezone"],
        valid["duration_minutes"],
        valid["metadata"],
        key,
        valid["fingerprint"],
    )
    CONVERSATIONS[conversation.id] = conversation
    if key is not None:
        BY_KEY[key] = conversation.id
    return {
        "conversationId": conversation.id,
        "status": "scheduled",
        "scheduledTime": format_ms(conversation.scheduled_ms),
        "created": True,
    }


@contract_tool(
    "getConversationStatus",
    "Get a conversation's status and details.",
)
async def get_conversation_status(
    conversationId: ConversationId,  # noqa: N803
) -> ConversationDetails:
    """A conversation's status and details."""
    return find(conversationId).details()


@contract_tool(
    "listConversations",
    (
        "List conversations by scheduled time, optionally filtered by status and time range. "
        "Pass nextCursor back as cursor for the next page."
    ),
    {"from": "from_"},
)
async def list_conversations(
    status: Annotated[
        Status | None, Field(description="Only conversations in this status.")
    ] = None,
    from_: Annotated[
        StrictStr | None,
        Field(alias="from", description="Only conversations starting at or after this time."),
    ] = None,
    to: Annotated[
        StrictStr | None, Field(description="Only conversations starting before this time.")
    ] = None,
    limit: Annotated[
        StrictInt | None, Field(description="Page size, 1 to 500. Default 50.")
    ] = None,
    cursor: Annotated[
        StrictStr | None, Field(description="nextCursor of the previous page.")
    ] = None,
) -> ConversationPage:
    """One page of conversations, ordered by scheduled time then id."""
    from_ms = None if from_ is None else parse_ms("from", from_)
    to_ms = None if to is None else parse_ms("to", to)
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise Invalid("to", "must be after `from`")
    page_size = DEFAULT_LIST_LIMIT if limit is None else limit
    if not 1 <= page_size <= LIST_LIMIT:
        raise Invalid("limit", f"must be between 1 and {LIST_LIMIT}")
    after = None if cursor is None else decode_cursor(cursor)
    rows = sorted(CONVERSATIONS.values(), key=lambda c: (c.scheduled_ms, c.id))
    selected: list[Conversation] = []
    more = False
    for c in rows:
        if status is not None and c.status != status:
            continue
        if from_ms is not None and c.scheduled_ms < from_ms:
            continue
        if to_ms is not None and c.scheduled_ms >= to_ms:
            continue
        if after is not None and (c.scheduled_ms, c.id) <= after:
            continue
        if len(selected) == page_size:
            more = True
            break
        selected.append(c)
    page: ConversationPage = {"conversations": [c.details() for c in selected]}
    if more and selected:
        page["nextCursor"] = encode_cursor(selected[-1])
    return page


@contract_tool(
    "cancelConversation",
    "Cancel a conversation that has not finished.",
)
async def cancel_conversation(
    conversationId: ConversationId,  # noqa: N803
) -> ConversationDetails:
    """`scheduled` or `running` -> `cancelled`; a finished conversation is refused."""
    conversation = find(conversationId)
    if conversation.status not in ("scheduled", "running"):
        raise refuse(conversation, "cancel")
    conversation.status = "cancelled"
    conversation.completed_ms = now_ms()
    return conversation.details()


@contract_tool(
    "rescheduleConversation",
    "Move a conversation that has not started to another time.",
)
async def reschedule_conversation(
    conversationId: ConversationId,  # noqa: N803
    scheduledTime: Annotated[  # noqa: N803
        StrictStr,
        Field(description="The new start: RFC 3339 with a UTC offset, kept to the millisecond."),
    ],
) -> ConversationDetails:
    """Moves a `scheduled` conversation; any other status is refused."""
    when = parse_ms("scheduledTime", scheduledTime)
    conversation = find(conversationId)
    if conversation.status != "scheduled":
        raise refuse(conversation, "reschedule")
    conversation.scheduled_ms = when
    return conversation.details()


@server.custom_route("/ping", methods=["GET"])
async def ping(_request: Request) -> Response:
    """The health probe the client sends beside `/mcp`."""
    return JSONResponse({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--stateless", action="store_true", help="stateless HTTP with JSON responses"
    )
    args = parser.parse_args()
    app = server.streamable_http_app(
        stateless_http=args.stateless,
        json_response=args.stateless,
        host="127.0.0.1",
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning")
    print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
    try:
        asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
