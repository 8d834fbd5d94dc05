//! `ticketd verify`: proof that nothing was altered. Walks every stored event in position order
//! and checks, from the bytes as stored, each event's hash, its link to the previous event of its
//! stream, and the chain over the global order; then that the store's record of each stream's
//! end (the `streams` table or collection) agrees with the streams' ends, and that the live read
//! models equal a fresh rebuild from the events. The first damage found is named by position and
//! event id with its kind.
//!
//! The checks are written once over [`AuditSource`] and run on either store: the SQLite file
//! through a read-only connection in one read transaction, MongoDB through one snapshot session.
//! Either way it may run beside serving servers and sees one consistent snapshot.

use crate::store::audit_source::{AuditSource, RawEvent};
use crate::store::embedded::audit::AuditReader;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use ticketd_events::chain;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::MemoryReadModel;
use ticketd_projections::reports::{ReportFact, ReportFolder, day_counters};

/// Rows read per query while walking the log.
const PAGE: usize = 10_000;

/// How far from where it sits a moved event is looked for, to tell a reordering from an edit.
const REORDER_WINDOW: u64 = 64;

/// What is wrong with the first bad event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Its stored content no longer gives its stored hash, or a chain link of it was rewritten.
    Altered,
    /// An event is gone: a hole in the positions or in a stream's versions, or a stream that
    /// ends before the version the `streams` table recorded.
    Missing,
    /// An event the store never wrote: beyond its stream's recorded end, or in an unknown stream.
    Inserted,
    /// An event intact but somewhere else than where it was written.
    Reordered,
    /// The events are intact but the read models differ from a rebuild.
    ReadModel,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Damage::Altered => "altered",
            Damage::Missing => "missing",
            Damage::Inserted => "inserted",
            Damage::Reordered => "reordered",
            Damage::ReadModel => "read model differs",
        })
    }
}

/// The first damage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind.
    pub damage: Damage,
    /// The position of the bad event (for a missing one, where it should be).
    pub position: u64,
    /// The bad event's id; for a missing one, the id of the event found in its place or after it.
    pub event_id: Option<String>,
    /// What exactly, for a person.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.damage, self.position)?;
        if let Some(id) = &self.event_id {
            write!(f, " (event {id})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What a clean verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events checked.
    pub events: u64,
    /// Streams (tickets) checked.
    pub streams: u64,
    /// The last position.
    pub head: u64,
    /// The last event's global hash: record it elsewhere, and a later verify that ends on the
    /// same value proves nobody rewrote the log up to there.
    pub head_global_hash: String,
    /// Ticket rows compared.
    pub tickets: u64,
    /// Message rows compared.
    pub messages: u64,
}

/// Verifies the SQLite store in `dir`: `Ok(Ok(report))` when clean, `Ok(Err(finding))` on
/// damage, `Err` when the store cannot be read at all. Needs no runtime.
pub fn verify(dir: &Path) -> Result<Result<Report, Finding>, StoreError> {
    let mut reader = AuditReader::open(dir)?;
    super::ready_now(check(&mut reader))?
}

/// Verifies whatever `source` reads: every chain, then the read models.
pub async fn check<S: AuditSource>(source: &mut S) -> Result<Result<Report, Finding>, StoreError> {
    let mut chains = ChainCheck::new(source.stream_tips().await?);
    // The reports projection is recomputed along the walk, in position order (ADR 0026).
    let mut folder = ReportFolder::default();
    let mut facts = Vec::new();
    let mut after = 0;
    loop {
        let page = source.events_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for row in &page {
            if let Err(finding) = chains.check(row) {
                return Ok(Err(finding));
            }
            facts.extend(folder.step(&row.decode()?));
        }
    }
    let mut report = match chains.finish() {
        Ok(report) => report,
        Err(finding) => return Ok(Err(finding)),
    };
    match read_models(source).await? {
        Ok((tickets, messages)) => {
            report.tickets = tickets;
            report.messages = messages;
        }
        Err(finding) => return Ok(Err(finding)),
    }
    if let Err(finding) = reports(source, facts).await? {
        return Ok(Err(finding));
    }
    Ok(Ok(report))
}

/// The stored reports projection against the recomputation: the same facts, and day counters
/// that add those facts up.
async fn reports<S: AuditSource>(
    source: &mut S,
    mut facts: Vec<ReportFact>,
) -> Result<Result<(), Finding>, StoreError> {
    facts.sort();
    let mut counters = day_counters(&facts);
    counters.sort();
    let (stored_facts, stored_counters) = source.report_projection().await?;
    let differs = |position: u64, detail: String| Finding {
        damage: Damage::ReadModel,
        position,
        event_id: None,
        detail,
    };
    if stored_facts != facts {
        let first = stored_facts
            .iter()
            .zip(&facts)
            .find(|(a, b)| a != b)
            .map(|(stored, rebuilt)| format!("stored {stored:?}, rebuilt {rebuilt:?}"))
            .unwrap_or_else(|| format!("{} stored, {} rebuilt", stored_facts.len(), facts.len()));
        let position = facts.first().map_or(0, |f| f.position);
        return Ok(Err(differs(
            position,
            format!("report facts differ: {first}"),
        )));
    }
    if stored_counters != counters {
        return Ok(Err(differs(
            0,
            format!(
                "report counters differ: {} stored, {} rebuilt from the facts",
                stored_counters.len(),
                counters.len()
            ),
        )));
    }
    Ok(Ok(()))
}

/// Where a stream's chain stands during the walk.
#[derive(Debug, Clone, Default)]
struct Tip {
    version: u64,
    hash: String,
    position: u64,
}

/// The chain checks over rows fed in position order.
pub struct ChainCheck {
    /// The store's record of each stream's version and last hash, as the writer kept it.
    recorded: HashMap<String, (u64, String)>,
    /// Each stream's chain so far.
    tips: HashMap<String, Tip>,
    /// The last position seen.
    position: u64,
    /// Its global hash.
    global_hash: String,
    /// Rows checked.
    events: u64,
}

impl ChainCheck {
    /// A walk from the start, against the store's record of the streams' ends.
    pub fn new(recorded: HashMap<String, (u64, String)>) -> Self {
        ChainCheck {
            recorded,
            tips: HashMap::new(),
            position: 0,
            global_hash: String::new(),
            events: 0,
        }
    }

    /// Checks the next row in position order.
    pub fn check(&mut self, row: &RawEvent) -> Result<(), Finding> {
        let finding = |damage, detail: String| Finding {
            damage,
            position: row.position,
            event_id: Some(row.event_id.clone()),
            detail,
        };
        let expected = self.position + 1;
        if row.position != expected {
            return Err(Finding {
                damage: Damage::Missing,
                position: expected,
                event_id: Some(row.event_id.clone()),
                detail: format!(
                    "no event at positions {expected} to {}; the log resumes at {} with this event",
                    row.position - 1,
                    row.position
                ),
            });
        }
        match self.recorded.get(&row.stream_id) {
            None => {
                return Err(finding(
                    Damage::Inserted,
                    format!("stream {} was never written by the store", row.stream_id),
                ));
            }
            Some((version, _)) if row.version > *version => {
                return Err(finding(
                    Damage::Inserted,
                    format!(
                        "version {} of stream {} is beyond its recorded end, version {version}",
                        row.version, row.stream_id
                    ),
                ));
            }
            Some(_) => {}
        }
        if row.computed_hash() != row.hash {
            let lowest = row.position.saturating_sub(REORDER_WINDOW).max(1);
            let moved_from = (lowest..=row.position + REORDER_WINDOW)
                .filter(|q| *q != row.position)
                .find(|q| row.hash_at(*q) == row.hash);
            return Err(match moved_from {
                Some(q) => finding(
                    Damage::Reordered,
                    format!("written at position {q}, found at {}", row.position),
                ),
                None => finding(
                    Damage::Altered,
                    "its content no longer gives its stored hash".into(),
                ),
            });
        }
        let tip = self.tips.get(&row.stream_id).cloned().unwrap_or_default();
        if row.version != tip.version + 1 {
            let (damage, detail) = if row.version > tip.version + 1 {
                (
                    Damage::Missing,
                    format!(
                        "versions {} to {} of stream {} are gone",
                        tip.version + 1,
                        row.version - 1,
                        row.stream_id
                    ),
                )
            } else {
                (
                    Damage::Reordered,
                    format!(
                        "version {} of stream {} comes after version {}",
                        row.version, row.stream_id, tip.version
                    ),
                )
            };
            return Err(finding(damage, detail));
        }
        if row.prev_hash != tip.hash {
            return Err(finding(
                Damage::Altered,
                format!(
                    "it does not chain to the previous event of stream {}",
                    row.stream_id
                ),
            ));
        }
        let global = chain::global_hash(&self.global_hash, &row.hash);
        if global != row.global_hash {
            return Err(finding(
                Damage::Altered,
                "its link in the global chain was rewritten".into(),
            ));
        }
        self.tips.insert(
            row.stream_id.clone(),
            Tip {
                version: row.version,
                hash: row.hash.clone(),
                position: row.position,
            },
        );
        self.position = row.position;
        self.global_hash = global;
        self.events += 1;
        Ok(())
    }

    /// After the last row: every stream must end where the store's record says it does.
    pub fn finish(self) -> Result<Report, Finding> {
        let mut problems: Vec<Finding> = Vec::new();
        for (stream_id, (version, hash)) in &self.recorded {
            let tip = self.tips.get(stream_id).cloned().unwrap_or_default();
            if tip.version < *version {
                problems.push(Finding {
                    damage: Damage::Missing,
                    position: tip.position + 1,
                    event_id: None,
                    detail: format!(
                        "stream {stream_id} ends at version {} but the store wrote up to {version}",
                        tip.version
                    ),
                });
            } else if tip.hash != *hash {
                problems.push(Finding {
                    damage: Damage::Altered,
                    position: tip.position,
                    event_id: None,
                    detail: format!(
                        "the last event of stream {stream_id} is not the one the store wrote"
                    ),
                });
            }
        }
        if let Some(first) = problems.into_iter().min_by_key(|f| f.position) {
            return Err(first);
        }
        Ok(Report {
            events: self.events,
            streams: self.tips.len() as u64,
            head: self.position,
            head_global_hash: self.global_hash,
            tickets: 0,
            messages: 0,
        })
    }
}

/// Rebuilds each ticket from its events and compares it, and every message of it, with the
/// stored read models; then that the read models hold nothing more.
async fn read_models<S: AuditSource>(
    source: &mut S,
) -> Result<Result<(u64, u64), Finding>, StoreError> {
    let (mut tickets, mut messages) = (0u64, 0u64);
    // The streams beside the tickets fold into these (ADR 0021), compared at the end.
    let mut beside = MemoryReadModel::default();
    for stream_id in source.stream_ids().await? {
        let events = source
            .stream(&stream_id)
            .await?
            .iter()
            .map(RawEvent::decode)
            .collect::<Result<Vec<EventEnvelope>, _>>()?;
        let model = MemoryReadModel::from_events(&events);
        beside.replies.extend(model.replies.clone());
        beside.blocks.extend(model.blocks.clone());
        let opening = events.first().map_or(0, |e| e.position);
        let differs = |detail: String| Finding {
            damage: Damage::ReadModel,
            position: opening,
            event_id: events.first().map(|e| e.event_id.clone()),
            detail,
        };
        let stored = source.ticket(&stream_id).await?;
        if model.tickets.get(&stream_id) != stored.as_ref() {
            return Ok(Err(differs(format!(
                "ticket {stream_id}: stored {stored:?}, rebuilt {:?}",
                model.tickets.get(&stream_id)
            ))));
        }
        let mut rebuilt: Vec<_> = model
            .messages
            .values()
            .filter(|m| m.ticket_id == stream_id)
            .collect();
        rebuilt.sort_by_key(|m| m.seq);
        let stored = source.messages_of(&stream_id).await?;
        if rebuilt.len() != stored.len() {
            return Ok(Err(differs(format!(
                "ticket {stream_id}: {} message rows stored, {} rebuilt",
                stored.len(),
                rebuilt.len()
            ))));
        }
        if let Some((want, got)) = rebuilt.iter().zip(&stored).find(|(a, b)| **a != *b) {
            return Ok(Err(differs(format!(
                "message {}: stored {got:?}, rebuilt {want:?}",
                want.id
            ))));
        }
        tickets += model.tickets.len() as u64;
        messages += rebuilt.len() as u64;
    }
    let stored_replies = source.replies().await?;
    let rebuilt_replies: Vec<_> = beside.replies.into_values().collect();
    if stored_replies != rebuilt_replies {
        return Ok(Err(Finding {
            damage: Damage::ReadModel,
            position: 0,
            event_id: None,
            detail: format!(
                "saved replies: stored {stored_replies:?}, rebuilt {rebuilt_replies:?}"
            ),
        }));
    }
    let stored_blocks = source.blocks().await?;
    let rebuilt_blocks: Vec<_> = beside.blocks.into_values().collect();
    if stored_blocks != rebuilt_blocks {
        return Ok(Err(Finding {
            damage: Damage::ReadModel,
            position: 0,
            event_id: None,
            detail: format!("blocks: stored {stored_blocks:?}, rebuilt {rebuilt_blocks:?}"),
        }));
    }
    if let Some(detail) = source.lookup_tables().await? {
        return Ok(Err(Finding {
            damage: Damage::ReadModel,
            position: 0,
            event_id: None,
            detail,
        }));
    }
    let (stored_tickets, stored_messages) = source.read_model_counts().await?;
    if (stored_tickets, stored_messages) != (tickets, messages) {
        return Ok(Err(Finding {
            damage: Damage::ReadModel,
            position: 0,
            event_id: None,
            detail: format!(
                "the read models hold {stored_tickets} tickets and {stored_messages} messages, \
                 the events make {tickets} and {messages}"
            ),
        }));
    }
    Ok(Ok((tickets, messages)))
}
