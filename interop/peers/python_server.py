"""Interop peer: an MCP server on the official Python SDK (`mcp` 2.3.x, `MCPServer`).

Usage:
    python_server.py streamable-http --port P [--stateless]
    python_server.py stdio

Tools: `echo {text}` -> the text; `add {a, b}` -> the sum; `slow {steps, delay_ms}` -> one
progress notification per step, then "done after <steps> steps". Started by the interop tests
(`cargo xtask interop`) on 127.0.0.1 only.
"""

import argparse
import asyncio

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("python-interop-server", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def slow(ctx: Context, steps: int = 3, delay_ms: int = 10) -> str:
    """Sends progress notifications, then answers."""
    steps = max(0, min(steps, 100))
    delay = max(0, min(delay_ms, 1000)) / 1000
    for step in range(1, steps + 1):
        await asyncio.sleep(delay)
        await ctx.report_progress(step, steps, f"step {step} of {steps}")
    return f"done after {steps} steps"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["streamable-http", "stdio"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run(
            "streamable-http",
            host="127.0.0.1",
            port=args.port,
            stateless_http=args.stateless,
        )


if __name__ == "__main__":
    main()
