//! The JSON-lines event stream: its schema ([`schema`]), the `finding` events of one audit
//! ([`changes`]) and the writer that never blocks the producer ([`sink`]).

pub mod changes;
pub mod schema;
pub mod sink;

pub use changes::{Seen, changes};
pub use schema::{Change, DroppedEvent, EVENTS_SCHEMA, Event, FindingEvent, ResetEvent};
pub use sink::{EventCounters, EventSink, Opener, append_to};
