//! Moving a store's history: `ticketd export` writes every event, with its full envelope, as one
//! JSON line in position order; `ticketd import` checks such a file (positions gap-free from 1,
//! versions gap-free per stream, every hash and both chains verifying) and loads it into an
//! empty store, keeping event ids, versions, positions, times and hashes, and projects the read
//! models from it. Either store can be the source or the target, so a team can move from the
//! embedded file to MongoDB and back without losing a byte of history.

use crate::config::Config;
use crate::store::MongoStore;
use crate::store::embedded::audit::AuditReader;
use crate::store::embedded::import as embedded_import;
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
        let line = serde_json::to_string(envelope)
            .map_err(|e| StoreError::Unavailable(format!("serialize: {e}")))?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Exports the store `config` names: MongoDB when `MONGO_URI` is set, else the embedded file,
/// read in one snapshot beside a running server.
pub async fn export(config: &Config, out: &mut impl Write) -> Result<u64, TransferError> {
    if let Some(uri) = &config.mongo_uri {
        let store = MongoStore::connect(uri, &config.db_name).await?;
        let exported = export_from(&store, out).await;
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
    out.flush()?;
    Ok(after)
}

/// Reads an export and checks that it is whole and untampered.
pub fn read_export(input: impl BufRead) -> Result<Vec<EventEnvelope>, TransferError> {
    let mut events: Vec<EventEnvelope> = Vec::new();
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
        let envelope: EventEnvelope = serde_json::from_str(&line)
            .map_err(|e| invalid(format!("not an event envelope: {e}")))?;
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
    Ok(events)
}

/// Loads a checked export into the (empty) store `config` names; returns how many events.
pub async fn import(config: &Config, events: &[EventEnvelope]) -> Result<u64, TransferError> {
    if let Some(uri) = &config.mongo_uri {
        let store = MongoStore::connect(uri, &config.db_name).await?;
        let imported = store.import(events).await;
        store.shutdown().await;
        imported?;
    } else {
        let dir = config.data_dir.clone();
        let events = events.to_vec();
        tokio::task::spawn_blocking(move || embedded_import::import(&dir, &events))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    }
    Ok(events.len() as u64)
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
    let events = read_export(file)?;
    import(config, &events).await
}
