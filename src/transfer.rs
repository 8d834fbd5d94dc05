//! Moving a store's history: `ticketd export` writes every event, with its full envelope, as one
//! JSON line in position order, then the store's links and checkpoints ([`Bookkeeping`]) as
//! `{"link": …}` and `{"checkpoint": …}` lines; `ticketd import` checks such a file (positions
//! gap-free from 1, versions gap-free per stream, every hash and both chains verifying, no
//! checkpoint past the last event) and loads it into an empty store, keeping event ids,
//! versions, positions, times and hashes, and projects the read models from it. Either store can
//! be the source or the target, so a team can move from the embedded file to MongoDB and back
//! without losing a byte of history, without its Discord bridge posting everything again, and
//! without a retried ticket open opening a second ticket.

use crate::config::Config;
use crate::store::embedded::audit::AuditReader;
use crate::store::embedded::import as embedded_import;
use crate::store::{Bookkeeping, MongoStore};
use std::io::{BufRead, Write};
use std::path::Path;
use ticketd_events::{EventEnvelope, EventStore, StoreError, chain};

/// Events read per page while exporting.
const PAGE: usize = 1_000;

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The store refused or failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a complete, untampered export.
    #[error("line {line}: {reason}")]
    Invalid {
        /// 1-based line of the file.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A line of an export after its events.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum BookkeepingLine {
    /// One link.
    Link {
        /// What the key names.
        kind: String,
        /// The key.
        key: String,
        /// What it is linked to.
        value: String,
    },
    /// One projector's checkpoint.
    Checkpoint {
        /// The projector.
        name: String,
        /// The last position it finished.
        position: u64,
    },
}

/// A checked export: the events in position order and what the store kept beside them.
#[derive(Debug, Default)]
pub struct Export {
    /// Every event, in position order.
    pub events: Vec<EventEnvelope>,
    /// The links and checkpoints.
    pub bookkeeping: Bookkeeping,
}

/// Writes every event of `store` to `out`, one JSON envelope per line; returns how many.
pub async fn export_from<S: EventStore>(
    store: &S,
    out: &mut impl Write,
) -> Result<u64, TransferError> {
    let mut after = 0;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        write_lines(&page, out)?;
    }
    out.flush()?;
    Ok(after)
}

fn write_lines(events: &[EventEnvelope], out: &mut impl Write) -> Result<(), TransferError> {
    for envelope in events {
        write_line(envelope, out)?;
    }
    Ok(())
}

fn write_line(value: &impl serde::Serialize, out: &mut impl Write) -> Result<(), TransferError> {
    let line = serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("serialize: {e}")))?;
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes `bookkeeping` after the events, the last of which is `last_position`. A checkpoint
/// read after the events (MongoDB has no snapshot across the pages) may have moved past them: it
/// is written as `last_position`, since the events after it are not in this export.
fn write_bookkeeping(
    bookkeeping: Bookkeeping,
    last_position: u64,
    out: &mut impl Write,
) -> Result<(), TransferError> {
    for (kind, key, value) in bookkeeping.links {
        write_line(&BookkeepingLine::Link { kind, key, value }, out)?;
    }
    for (name, position) in bookkeeping.checkpoints {
        let position = position.min(last_position);
        write_line(&BookkeepingLine::Checkpoint { name, position }, out)?;
    }
    out.flush()?;
    Ok(())
}

/// Exports the store `config` names: MongoDB when `MONGO_URI` is set, else the embedded file,
/// read in one snapshot beside a running server.
pub async fn export(config: &Config, out: &mut impl Write) -> Result<u64, TransferError> {
    if let Some(uri) = &config.mongo_uri {
        let store = MongoStore::connect(uri, &config.db_name).await?;
        let exported = async {
            let last = export_from(&store, out).await?;
            write_bookkeeping(store.bookkeeping().await?, last, out)?;
            Ok(last)
        }
        .await;
        store.shutdown().await;
        return exported;
    }
    let reader = AuditReader::open(&config.data_dir)?;
    let mut after = 0;
    loop {
        let page = reader
            .events_after(after, PAGE)?
            .iter()
            .map(|raw| raw.decode())
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = page.last() else { break };
        after = last.position;
        write_lines(&page, out)?;
    }
    write_bookkeeping(reader.bookkeeping()?, after, out)?;
    Ok(after)
}

/// Reads an export and checks that it is whole and untampered.
pub fn read_export(input: impl BufRead) -> Result<Export, TransferError> {
    let mut events: Vec<EventEnvelope> = Vec::new();
    let mut bookkeeping = Bookkeeping::default();
    let mut links_seen = std::collections::HashSet::new();
    let mut checkpoints_seen = std::collections::HashSet::new();
    let mut tips: std::collections::HashMap<String, (u64, String)> =
        std::collections::HashMap::new();
    let mut global = String::new();
    let mut last_recorded_at = i64::MIN;
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |reason: String| TransferError::Invalid {
            line: line_no,
            reason,
        };
        let envelope: EventEnvelope = match serde_json::from_str(&line) {
            Ok(envelope) if bookkeeping == Bookkeeping::default() => envelope,
            Ok(_) => {
                return Err(invalid(
                    "an event after the links and checkpoints: events come first".into(),
                ));
            }
            Err(not_event) => match serde_json::from_str::<BookkeepingLine>(&line) {
                Ok(BookkeepingLine::Link { kind, key, value }) => {
                    if !links_seen.insert((kind.clone(), key.clone())) {
                        return Err(invalid(format!("link {kind}/{key} appears twice")));
                    }
                    bookkeeping.links.push((kind, key, value));
                    continue;
                }
                Ok(BookkeepingLine::Checkpoint { name, position }) => {
                    let last = events.last().map_or(0, |e| e.position);
                    if position > last {
                        return Err(invalid(format!(
                            "checkpoint {name} is at position {position}, past the last event \
                             ({last})"
                        )));
                    }
                    if !checkpoints_seen.insert(name.clone()) {
                        return Err(invalid(format!("checkpoint {name} appears twice")));
                    }
                    bookkeeping.checkpoints.push((name, position));
                    continue;
                }
                Err(_) => {
                    return Err(invalid(format!("not an event envelope: {not_event}")));
                }
            },
        };
        let expected_position = events.len() as u64 + 1;
        if envelope.position != expected_position {
            return Err(invalid(format!(
                "position {} where {expected_position} was due: the export is incomplete or \
                 out of order",
                envelope.position
            )));
        }
        let (version, prev_hash) = tips.get(&envelope.stream_id).cloned().unwrap_or_default();
        if envelope.version != version + 1 {
            return Err(invalid(format!(
                "stream {} jumps from version {version} to {}",
                envelope.stream_id, envelope.version
            )));
        }
        if envelope.prev_hash != prev_hash {
            return Err(invalid(
                "prev_hash does not link to the stream's previous event".into(),
            ));
        }
        if envelope.hash != chain::envelope_hash(&envelope) {
            return Err(invalid(format!(
                "event {} does not match its hash: changed since it was recorded",
                envelope.event_id
            )));
        }
        global = chain::global_hash(&global, &envelope.hash);
        if envelope.global_hash != global {
            return Err(invalid(
                "global_hash does not link to the previous event".into(),
            ));
        }
        if envelope.recorded_at < last_recorded_at {
            return Err(invalid("recorded_at goes back in time".into()));
        }
        last_recorded_at = envelope.recorded_at;
        tips.insert(
            envelope.stream_id.clone(),
            (envelope.version, envelope.hash.clone()),
        );
        events.push(envelope);
    }
    Ok(Export {
        events,
        bookkeeping,
    })
}

/// Loads a checked export into the (empty) store `config` names; returns how many events.
pub async fn import(config: &Config, export: Export) -> Result<u64, TransferError> {
    let count = export.events.len() as u64;
    if let Some(uri) = &config.mongo_uri {
        let store = MongoStore::connect(uri, &config.db_name).await?;
        let imported = store.import(&export.events, &export.bookkeeping).await;
        store.shutdown().await;
        imported?;
    } else {
        let dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            embedded_import::import(&dir, &export.events, &export.bookkeeping)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    }
    Ok(count)
}

/// `ticketd export [--output FILE]`.
pub async fn export_command(config: &Config, output: Option<&Path>) -> Result<u64, TransferError> {
    match output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
            export(config, &mut file).await
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            export(config, &mut out).await
        }
    }
}

/// `ticketd import --input FILE`.
pub async fn import_command(config: &Config, input: &Path) -> Result<u64, TransferError> {
    let file = std::io::BufReader::new(std::fs::File::open(input)?);
    let export = read_export(file)?;
    import(config, export).await
}
