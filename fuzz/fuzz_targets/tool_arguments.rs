//! Fuzzes the Scheduler's tool argument decoding: arbitrary bytes, read as the JSON object of a
//! `tools/call`'s arguments, go through `decode_args` for every argument type of the tool
//! contract and then through the validation the tool applies. Nothing panics, and every error
//! names a non-empty field and says what is wrong with it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scheduler::domain::{
    self, ConversationRef, InvalidArgument, ListConversations, RescheduleConversation,
    ScheduleConversation,
};
use scheduler_server::tools::decode_args;
use serde_json::{Map, Value};

fn check<T>(result: Result<T, InvalidArgument>) {
    if let Err(e) = result {
        assert!(!e.field.is_empty(), "error without a field: {e:?}");
        assert!(!e.message.is_empty(), "error without a message: {e:?}");
    }
}

fn all_tools(args: Option<Map<String, Value>>) {
    // scheduleConversation
    check(decode_args::<ScheduleConversation>(args.clone()).and_then(|a| a.validate()));
    // listConversations
    check(decode_args::<ListConversations>(args.clone()).and_then(|a| a.validate()));
    // getConversationStatus, cancelConversation
    check(decode_args::<ConversationRef>(args.clone()));
    // rescheduleConversation: the tool parses the new time with `parse_time`.
    check(
        decode_args::<RescheduleConversation>(args)
            .and_then(|r| domain::parse_time("scheduledTime", &r.scheduled_time)),
    );
}

fuzz_target!(|input: &[u8]| {
    match serde_json::from_slice::<Value>(input) {
        Ok(Value::Object(args)) => all_tools(Some(args)),
        // A call without arguments is decoded as `{}`.
        Ok(Value::Null) => all_tools(None),
        _ => {}
    }
});
