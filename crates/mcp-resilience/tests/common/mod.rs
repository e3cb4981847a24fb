//! Captures tracing events (name, target, level, fields) into a buffer, so tests can assert
//! on the stable event names and fields that serve as metric hooks.
//!
//! One process-wide subscriber routes each event to the buffer installed on the emitting
//! thread. (A per-test thread-local default subscriber loses events now and then: tracing
//! caches each callsite's interest process-wide, and tests running in parallel race on it.)

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) level: Level,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Captured {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("event {} has no field {name}: {self:?}", self.name))
    }
}

/// The buffer; [`Events::install`] makes it receive this thread's events.
#[derive(Clone, Default)]
pub(crate) struct Events(Arc<Mutex<Vec<Captured>>>);

thread_local! {
    static CURRENT: RefCell<Option<Events>> = const { RefCell::new(None) };
}

/// Stops the capture when dropped.
pub(crate) struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

impl Events {
    /// Captures the events emitted on this thread until the guard drops. Use a
    /// current-thread runtime (the `#[tokio::test]` default) so tasks run here too.
    pub(crate) fn install(&self) -> Capturing {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Router))
                .expect("no other global subscriber in this test binary");
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        Capturing(())
    }

    pub(crate) fn named(&self, name: &str) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The global layer: hands each event to the emitting thread's buffer, if any.
struct Router;

impl<S: Subscriber> Layer<S> for Router {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(events) = CURRENT.with(|c| c.borrow().clone()) else {
            return;
        };
        let meta = event.metadata();
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        events.0.lock().unwrap().push(Captured {
            name: meta.name().to_owned(),
            target: meta.target().to_owned(),
            level: *meta.level(),
            fields,
        });
    }
}
