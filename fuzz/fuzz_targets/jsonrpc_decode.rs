//! Fuzzes JSON-RPC decoding: arbitrary bytes never panic, and whatever decodes re-encodes to
//! JSON that decodes to the same kind of message with the same id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport::jsonrpc::Message;

fn id_of(m: &Message) -> Option<String> {
    match m {
        Message::Request(r) => Some(r.id.to_string()),
        Message::Response(r) => Some(r.id.to_string()),
        Message::Error(e) => e.id.as_ref().map(ToString::to_string),
        Message::Notification(_) => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(messages) = Message::from_slice_batch(input) else {
        return;
    };
    for m in messages {
        let again = Message::from_slice(&m.to_vec()).expect("re-encoded message must decode");
        assert_eq!(std::mem::discriminant(&m), std::mem::discriminant(&again));
        assert_eq!(id_of(&m), id_of(&again));
    }
});
