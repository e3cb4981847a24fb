//! Benchmarks of the workspace live in `benches/`; this library is empty on purpose.
//!
//! - `codec`: the JSON-RPC decoder and the SSE decoder on realistic MCP payloads.
