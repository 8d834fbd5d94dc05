//! The reports projection in MongoDB (ADR 0026), mirroring the SQLite file's tables: each
//! ticket's report state (`report_tickets`), every fact (`report_facts`, `_id` kind and
//! position) and per-day counters of the frequent facts (`report_counts`, `$inc` upserts), all
//! written in the append's transaction. A report reads the counters of whole days and the facts
//! of the part days at its edges, plus the durations and breaches, and adds them up with
//! [`build_report`] as the recomputation from the events does.

use super::docs::{to_i64, unavailable};
use super::projection::ProjectError;
use super::schema::Collections;
use bson::{Document, doc};
use mongodb::{ClientSession, Collection};
use std::str::FromStr;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::reports::{
    DAY_MS, Dims, FactKind, Report, ReportFact, ReportQuery, ReportRow, ReportTicket, build_report,
    day_start, report_step,
};

/// Per-ticket report state.
pub(super) const REPORT_TICKETS: &str = "report_tickets";
/// Every fact.
pub(super) const REPORT_FACTS: &str = "report_facts";
/// Per-day counters.
pub(super) const REPORT_COUNTS: &str = "report_counts";

/// Runs a driver action in `session` when there is one.
macro_rules! exec {
    ($session:expr, $action:expr) => {
        match $session.as_deref_mut() {
            Some(s) => $action.session(s).await,
            None => $action.await,
        }
    };
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        reason,
    }
}

/// Writes what `envelope` adds to the reports, in `session`'s transaction when given.
pub(super) async fn project(
    collections: &Collections,
    mut session: Option<&mut ClientSession>,
    envelope: &EventEnvelope,
) -> Result<(), ProjectError> {
    if !envelope.event.is_ticket_event() {
        return Ok(());
    }
    let found = exec!(
        session,
        collections
            .report_tickets
            .find_one(doc! {"_id": &envelope.stream_id})
    )?;
    let state: Option<ReportTicket> = match found {
        Some(document) => Some(state_from(&document).map_err(ProjectError::Encode)?),
        None => None,
    };
    let step = report_step(state.as_ref(), envelope);
    if let Some(next) = step.state {
        let document = state_doc(&envelope.stream_id, &next).map_err(ProjectError::Encode)?;
        exec!(
            session,
            collections
                .report_tickets
                .replace_one(doc! {"_id": &envelope.stream_id}, document)
                .upsert(true)
        )?;
    }
    for fact in &step.facts {
        let document = fact_doc(fact).map_err(ProjectError::Encode)?;
        exec!(session, collections.report_facts.insert_one(document))?;
        if fact.kind.is_counted() {
            let (id, fields) = counter_key(fact);
            exec!(
                session,
                collections
                    .report_counts
                    .update_one(
                        doc! {"_id": id},
                        doc! {"$inc": {"n": 1_i64}, "$setOnInsert": fields},
                    )
                    .upsert(true)
            )?;
        }
    }
    Ok(())
}

pub(super) fn state_doc(ticket_id: &str, state: &ReportTicket) -> Result<Document, StoreError> {
    let text = serde_json::to_string(state)
        .map_err(|e| StoreError::Unavailable(format!("report state: {e}")))?;
    Ok(doc! {"_id": ticket_id, "state": text})
}

fn state_from(document: &Document) -> Result<ReportTicket, StoreError> {
    let text = document
        .get_str("state")
        .map_err(|e| corrupt(format!("report state: {e}")))?;
    serde_json::from_str(text).map_err(|e| corrupt(format!("report state: {e}")))
}

pub(super) fn fact_doc(fact: &ReportFact) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": format!("{}:{}", fact.kind.as_str(), fact.position),
        "kind": fact.kind.as_str(),
        "at": fact.at,
        "position": to_i64(fact.position)?,
        "recorded_at": fact.recorded_at,
        "issue_level": fact.dims.issue_level.as_str(),
        "support_role": fact.dims.support_role.as_str(),
        "assignee": fact.dims.assignee.as_deref().unwrap_or_default(),
        "value": fact.value,
    })
}

/// A counter's `_id` and its fields (the holder last in the id: it is the partner's text).
fn counter_key(fact: &ReportFact) -> (String, Document) {
    let day = day_start(fact.at);
    let assignee = fact.dims.assignee.as_deref().unwrap_or_default();
    let id = format!(
        "{day}|{}|{}|{}|{}|{assignee}",
        fact.kind.as_str(),
        fact.dims.issue_level.as_str(),
        fact.dims.support_role.as_str(),
        fact.value
    );
    let fields = doc! {
        "day": day,
        "kind": fact.kind.as_str(),
        "issue_level": fact.dims.issue_level.as_str(),
        "support_role": fact.dims.support_role.as_str(),
        "assignee": assignee,
        "value": fact.value,
    };
    (id, fields)
}

fn dims_from(document: &Document) -> Result<Dims, StoreError> {
    let text = |name: &str| {
        document
            .get_str(name)
            .map_err(|e| corrupt(format!("report {name}: {e}")))
    };
    let assignee = text("assignee")?;
    Ok(Dims {
        issue_level: text("issue_level")?
            .parse()
            .map_err(|_| corrupt("report issue_level".into()))?,
        support_role: text("support_role")?
            .parse()
            .map_err(|_| corrupt("report support_role".into()))?,
        assignee: (!assignee.is_empty()).then(|| assignee.to_owned()),
    })
}

fn int(document: &Document, name: &str) -> Result<i64, StoreError> {
    document
        .get_i64(name)
        .map_err(|e| corrupt(format!("report {name}: {e}")))
}

fn kind_from(document: &Document) -> Result<FactKind, StoreError> {
    let text = document
        .get_str("kind")
        .map_err(|e| corrupt(format!("report kind: {e}")))?;
    FactKind::from_str(text).map_err(|()| corrupt(format!("report fact kind {text}")))
}

pub(super) fn fact_from(document: &Document) -> Result<ReportFact, StoreError> {
    Ok(ReportFact {
        kind: kind_from(document)?,
        at: int(document, "at")?,
        position: u64::try_from(int(document, "position")?)
            .map_err(|e| corrupt(format!("report position: {e}")))?,
        recorded_at: int(document, "recorded_at")?,
        dims: dims_from(document)?,
        value: int(document, "value")?,
    })
}

pub(super) fn counter_from(document: &Document) -> Result<ReportRow, StoreError> {
    Ok(ReportRow {
        kind: kind_from(document)?,
        at: int(document, "day")?,
        dims: dims_from(document)?,
        value: int(document, "value")?,
        count: u64::try_from(int(document, "n")?)
            .map_err(|e| corrupt(format!("report count: {e}")))?,
    })
}

async fn collect<T>(
    collection: &Collection<Document>,
    filter: Document,
    decode: impl Fn(&Document) -> Result<T, StoreError>,
    out: &mut Vec<T>,
) -> Result<(), StoreError> {
    let mut cursor = collection.find(filter).await.map_err(unavailable)?;
    while cursor.advance().await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        out.push(decode(&document)?);
    }
    Ok(())
}

/// Facts of `kind` with `at` in `[lo, hi)` (recorded by `as_of` when given), as rows.
async fn facts_between(
    collections: &Collections,
    kind: FactKind,
    (lo, hi): (i64, i64),
    as_of: Option<i64>,
    out: &mut Vec<ReportRow>,
) -> Result<(), StoreError> {
    if hi <= lo {
        return Ok(());
    }
    let mut filter = doc! {"kind": kind.as_str(), "at": {"$gte": lo, "$lt": hi}};
    if let Some(as_of) = as_of {
        filter.insert("recorded_at", doc! {"$lte": as_of});
    }
    collect(
        &collections.report_facts,
        filter,
        |d| fact_from(d).map(|f| ReportRow::from(&f)),
        out,
    )
    .await
}

/// The report for `query`: the same selection as the SQLite file's.
pub(super) async fn report(
    collections: &Collections,
    query: &ReportQuery,
) -> Result<Report, StoreError> {
    let mut rows = Vec::new();
    let (lo, hi) = (query.from, query.recorded_end());
    if hi > lo {
        let first_full = if lo.rem_euclid(DAY_MS) == 0 {
            lo
        } else {
            day_start(lo) + DAY_MS
        };
        let last_full = day_start(hi);
        let edges = if first_full < last_full {
            collect(
                &collections.report_counts,
                doc! {"day": {"$gte": first_full, "$lt": last_full}},
                counter_from,
                &mut rows,
            )
            .await?;
            [(lo, first_full), (last_full, hi)]
        } else {
            [(lo, hi), (hi, hi)]
        };
        for kind in FactKind::COUNTED {
            for edge in edges {
                facts_between(collections, kind, edge, None, &mut rows).await?;
            }
        }
        for kind in [FactKind::FirstResponse, FactKind::Resolution] {
            facts_between(collections, kind, (lo, hi), None, &mut rows).await?;
        }
    }
    facts_between(
        collections,
        FactKind::SlaBreach,
        (query.from, query.to),
        query.as_of,
        &mut rows,
    )
    .await?;
    Ok(build_report(query, rows))
}

/// The document of a day counter, as a rebuild writes it.
pub(super) fn counter_doc(row: &ReportRow) -> Document {
    let fact = ReportFact {
        kind: row.kind,
        at: row.at,
        position: 0,
        recorded_at: row.at,
        dims: row.dims.clone(),
        value: row.value,
    };
    let (id, mut fields) = counter_key(&fact);
    fields.insert("_id", id);
    fields.insert("n", i64::try_from(row.count).unwrap_or(i64::MAX));
    fields
}
