//! The Socket.IO broadcaster is a projector: it follows the global event stream from the moment
//! the server starts and emits each event to the rooms that may see it, in stream order. Since it
//! reads the stream rather than hooking into handlers, an event reaches the sockets whatever
//! produced it: REST, Discord, the command line or another instance on the same database.
//!
//! Each event goes out twice: as the seed has it to the plain rooms, and with its
//! [`Position`] as a second argument to the rooms of sockets that asked for positions. It
//! advances the [`Cursor`] under the cursor's lock, which is where resuming sockets join.

use crate::socket::resume::{Cursor, Position};
use crate::socket::{STAFF_ROOM, positioned, user_room};
use crate::store::ReadModels;
use socketioxide::SocketIo;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use ticketd_events::{EventEnvelope, EventStore};
use ticketd_projections::TicketView;
use ticketd_projections::fanout::{self, Audience, Delivery};
use tracing::{debug, warn};

/// Events read per round trip to the store.
const BATCH: usize = 256;
/// Ticket rows kept for planning; a message event needs its ticket's owner.
const TICKET_CACHE: usize = 4_096;

/// Follows the stream from its current head until the task is aborted.
pub async fn run<S: EventStore + ReadModels>(
    store: S,
    io: SocketIo,
    cursor: Arc<Cursor>,
    sla: ticketd_events::SlaPolicy,
) {
    let mut after = loop {
        let mut held = cursor.hold().await;
        match store.head().await {
            Ok(head) => {
                held.advance(head);
                break head;
            }
            Err(e) => {
                drop(held);
                warn!("broadcaster cannot read the head: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut tickets: HashMap<String, TicketView> = HashMap::new();
    loop {
        store.wait_beyond(after).await;
        let batch = match store.read_all(after, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                warn!("broadcaster cannot read events after {after}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // The last event of a full batch waits for the next read, which shows whether the
        // event after it supersedes it.
        let ready = if batch.len() == BATCH {
            batch.len() - 1
        } else {
            batch.len()
        };
        for (i, envelope) in batch.iter().enumerate().take(ready) {
            let superseded = batch
                .get(i + 1)
                .is_some_and(|next| fanout::superseded_by(envelope, next));
            let mut held = cursor.hold().await;
            // A failure to look up rows is retried: skipping would lose an event for every socket.
            while !superseded && let Err(e) = emit(&store, &io, &mut tickets, envelope, &sla).await
            {
                warn!(
                    position = envelope.position,
                    "broadcaster cannot plan an event: {e}; retrying"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            held.advance(envelope.position);
            after = envelope.position;
        }
    }
}

async fn emit<S: ReadModels>(
    store: &S,
    io: &SocketIo,
    tickets: &mut HashMap<String, TicketView>,
    envelope: &EventEnvelope,
    sla: &ticketd_events::SlaPolicy,
) -> Result<(), ticketd_events::StoreError> {
    // Saved replies and blocks are nobody's socket news (ADR 0021).
    if !envelope.event.is_ticket_event() {
        return Ok(());
    }
    let ticket = match tickets.get(&envelope.stream_id) {
        Some(ticket) if fanout::message_needed(envelope).is_some() || is_message_post(envelope) => {
            ticket.clone()
        }
        _ => {
            let Some(ticket) = store.get_ticket(&envelope.stream_id).await? else {
                return Ok(());
            };
            if tickets.len() >= TICKET_CACHE {
                tickets.clear();
            }
            tickets.insert(ticket.id.clone(), ticket.clone());
            ticket
        }
    };
    let message = match fanout::message_needed(envelope) {
        Some(id) => store.get_message(id).await?,
        None => None,
    };
    let Some(delivery) = fanout::plan(envelope, &ticket, message.as_ref()) else {
        return Ok(());
    };
    debug!(
        position = envelope.position,
        event = delivery.event.name(),
        "broadcast"
    );
    let name = delivery.event.name();
    let at = Position::of(envelope);
    let owner = user_room(&ticket.user_id);
    for (rooms, except, staff) in audiences(&delivery, &owner) {
        let payload = delivery.payload_for(staff, sla);
        let sent = io
            .to(rooms.clone())
            .except(except.clone())
            .emit(name, &payload)
            .await;
        if let Err(e) = sent {
            warn!(position = envelope.position, "broadcast failed: {e}");
        }
        let twins = |names: Vec<String>| names.iter().map(|r| positioned(r)).collect::<Vec<_>>();
        let sent = io
            .to(twins(rooms))
            .except(twins(except))
            .emit(name, &(&payload, &at))
            .await;
        if let Err(e) = sent {
            warn!(position = envelope.position, "broadcast failed: {e}");
        }
    }
    Ok(())
}

/// Who gets which payload: `(rooms, except rooms, as staff)`. A ticket reaches staff with its
/// tags and its owner's other sockets without; a message is the same for both, so one emission
/// reaches a socket that is in both rooms once.
fn audiences(delivery: &Delivery, owner: &str) -> Vec<(Vec<String>, Vec<String>, bool)> {
    let staff = || vec![STAFF_ROOM.to_string()];
    match delivery.audience {
        Audience::StaffOnly => vec![(staff(), vec![], true)],
        Audience::OwnerAndStaff if delivery.differs_by_viewer() => vec![
            (staff(), vec![], true),
            (vec![owner.to_string()], staff(), false),
        ],
        Audience::OwnerAndStaff => vec![(
            vec![owner.to_string(), STAFF_ROOM.to_string()],
            vec![],
            true,
        )],
    }
}

fn is_message_post(envelope: &EventEnvelope) -> bool {
    matches!(
        envelope.event,
        ticketd_events::TicketEvent::MessagePosted { .. }
    )
}
