//! The JSON Schemas of the stored event shapes, generated with schemars and checked in under
//! `events/schema/`, so a change to an event's shape shows up in review as a schema diff. This
//! test fails when the checked-in files drift from the types; regenerate them with
//! `UPDATE_SCHEMAS=1 cargo test -p ticketd-events --test schema`.

use schemars::{JsonSchema, schema_for};
use std::path::PathBuf;
use ticketd_events::{Actor, EventEnvelope, TicketEvent};

fn check<T: JsonSchema>(file: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let mut generated = serde_json::to_string_pretty(&schema_for!(T)).expect("render the schema");
    generated.push('\n');
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).expect("write the schema");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "{} is out of date with the types; run \
         `UPDATE_SCHEMAS=1 cargo test -p ticketd-events --test schema` and review the diff",
        path.display()
    );
}

#[test]
fn the_event_schemas_match_the_checked_in_files() {
    check::<EventEnvelope>("event-envelope.json");
    check::<TicketEvent>("ticket-event.json");
    check::<Actor>("actor.json");
}
