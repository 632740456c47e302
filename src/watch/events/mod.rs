//! The JSON-lines event stream: its schema ([`schema`]) and the writer that never blocks
//! the producer ([`sink`]).

pub mod schema;
pub mod sink;

pub use schema::{Change, DroppedEvent, EVENTS_SCHEMA, Event, FindingEvent, ResetEvent};
pub use sink::{EventCounters, EventSink, Opener, append_to};
