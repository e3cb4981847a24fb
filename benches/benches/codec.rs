//! Decoding cost of the transport's codecs on realistic MCP payloads: a `tools/call` result as
//! plain JSON and as an SSE stream, whole and split into small network-sized chunks.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_transport::jsonrpc::Message;
use mcp_transport::sse::Decoder;

const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Conversation scheduled for 2026-11-25T10:00:00Z with id 3f1b7c2e-9a4d-4e8f-b1c2-0d9e8f7a6b5c"}],"structuredContent":{"id":"3f1b7c2e-9a4d-4e8f-b1c2-0d9e8f7a6b5c","status":"scheduled"},"isError":false}}"#;

fn sse_stream() -> Vec<u8> {
    let mut s = b"id: 0\nretry: 3000\ndata:\n\n".to_vec();
    for i in 0..3 {
        s.extend_from_slice(format!("id: {}\nevent: message\ndata: ", i + 1).as_bytes());
        s.extend_from_slice(RESULT);
        s.extend_from_slice(b"\n\n");
    }
    s
}

fn jsonrpc(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonrpc");
    g.throughput(Throughput::Bytes(RESULT.len() as u64));
    g.bench_function("decode_tools_call_result", |b| {
        b.iter(|| Message::from_slice(black_box(RESULT)))
    });
    g.finish();
}

fn sse(c: &mut Criterion) {
    let stream = sse_stream();
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("decode_whole", |b| {
        b.iter(|| {
            let mut d = Decoder::new(1 << 20);
            d.push(black_box(&stream));
            let mut n = 0;
            while let Ok(Some(_)) = d.next_event() {
                n += 1;
            }
            n
        })
    });
    g.bench_function("decode_in_64_byte_chunks", |b| {
        b.iter(|| {
            let mut d = Decoder::new(1 << 20);
            let mut n = 0;
            for chunk in black_box(&stream).chunks(64) {
                d.push(chunk);
                while let Ok(Some(_)) = d.next_event() {
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, jsonrpc, sse);
criterion_main!(benches);
