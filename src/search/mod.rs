//! Full-text search over tickets (ADR 0024): a query's words are looked up one at a time in the
//! store's index ([`SearchIndex`]), the tickets holding every word are ranked here, filtered like
//! a listing, paged, and given highlighted excerpts. Everything but the per-word lookup is this
//! one file, so both stores rank, page and highlight alike.

pub mod text;

use crate::store::{ReadModels, SearchIndex, TermHit, TicketFilter, found};
use std::collections::HashMap;
use text::QueryTerm;
use ticketd_events::StoreError;
use ticketd_projections::TicketView;

/// Most words a query may have: each is one index lookup.
pub const MAX_WORDS: usize = 10;

/// Most highlighted excerpts per hit.
pub const MAX_HIGHLIGHTS: usize = 3;

/// Messages of one hit read at most while looking for excerpts, from the first one holding a
/// matched word, so a long conversation cannot make one page slow.
const MESSAGES_SCANNED: usize = 64;

/// Messages read at first for a hit's excerpts: most hits find theirs in these.
const FIRST_MESSAGES: usize = 16;

/// Most tickets fetched at once while walking ranked candidates through a filter (the first
/// fetch asks for one page's worth, each next one twice as many).
const CHUNK: usize = 200;

/// Bits of a cursor below the score: the ticket's position.
const POSITION_BITS: u32 = 48;

/// One search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The query's words (see [`text::query_terms`]); at least one.
    pub terms: Vec<QueryTerm>,
    /// The listing filters; `user_id` is set for customers.
    pub filter: TicketFilter,
    /// Whether internal notes are searched and shown.
    pub staff: bool,
    /// Where the previous page stopped ([`Hit::cursor`]).
    pub cursor: Option<u64>,
    /// Hits wanted.
    pub limit: usize,
}

/// One matching ticket.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The ticket as stored (the caller shapes it for its reader).
    pub ticket: TicketView,
    /// Up to [`MAX_HIGHLIGHTS`] HTML-safe excerpts with `<mark>`ed words.
    pub highlights: Vec<String>,
    /// The cursor of the page after this hit.
    pub cursor: u64,
}

/// A page of hits, best first, and whether more follow.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The hits.
    pub hits: Vec<Hit>,
    /// Whether a next page has hits.
    pub more: bool,
}

/// How much a word found in these places counts: the topic most, then the description, then
/// any message. A ticket's score is the sum over the query's words.
fn weight(mask: u8) -> u64 {
    let has = |bit: u8| u64::from(mask & bit != 0);
    4 * has(found::TOPIC) + 2 * has(found::DESCRIPTION) + has(found::MESSAGE)
}

/// A ticket's place in the ranking as one number, larger first: score, then newer first.
/// Positions beyond 2^48 rank as if they were 2^48 - 1 (a store that large is out of reach).
fn rank_key(score: u64, position: u64) -> u64 {
    (score << POSITION_BITS) | position.min((1 << POSITION_BITS) - 1)
}

/// What is known of a ticket holding every word looked up so far.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: u64,
    found: u8,
    /// The earliest of the words' [`TermHit::first_message`].
    first_message: Option<u64>,
}

impl Candidate {
    fn add(&mut self, hit: &TermHit) {
        self.score += weight(hit.found);
        self.found |= hit.found;
        self.first_message = match (self.first_message, hit.first_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Runs `request` against `store`.
pub async fn search<S: SearchIndex + ReadModels>(
    store: &S,
    request: &SearchRequest,
) -> Result<Found, StoreError> {
    // Every word must match: tickets missing one drop out as the words are looked up.
    let mut candidates: Option<HashMap<u64, Candidate>> = None;
    for term in &request.terms {
        let hits = store.search_term(term, request.staff).await?;
        candidates = Some(match candidates {
            None => hits
                .iter()
                .map(|hit| {
                    let mut c = Candidate {
                        score: 0,
                        found: 0,
                        first_message: None,
                    };
                    c.add(hit);
                    (hit.position, c)
                })
                .collect(),
            Some(mut so_far) => {
                let found: HashMap<u64, &TermHit> =
                    hits.iter().map(|hit| (hit.position, hit)).collect();
                so_far.retain(|p, c| match found.get(p) {
                    Some(hit) => {
                        c.add(hit);
                        true
                    }
                    None => false,
                });
                so_far
            }
        });
        if candidates.as_ref().is_some_and(HashMap::is_empty) {
            break;
        }
    }
    let mut ranked: Vec<(u64, u64, Candidate)> = candidates
        .unwrap_or_default()
        .into_iter()
        .map(|(p, c)| (rank_key(c.score, p), p, c))
        .filter(|(key, _, _)| request.cursor.is_none_or(|cursor| *key < cursor))
        .collect();
    ranked.sort_unstable_by_key(|&(key, _, _)| std::cmp::Reverse(key));

    let wanted = request.limit.saturating_add(1);
    let mut page: Vec<(TicketView, u64, Candidate)> = Vec::new();
    if request.filter.user_id.is_some() {
        // A customer's own tickets are few: take them all once rather than walking everybody's.
        let own = own_tickets(store, &request.filter).await?;
        for (key, position, candidate) in ranked {
            if let Some(ticket) = own.get(&position) {
                page.push((ticket.clone(), key, candidate));
                if page.len() == wanted {
                    break;
                }
            }
        }
    } else {
        let mut rest = ranked.as_slice();
        let mut chunk = wanted.min(CHUNK);
        while !rest.is_empty() && page.len() < wanted {
            let (now, later) = rest.split_at(chunk.min(rest.len()));
            rest = later;
            chunk = (chunk * 2).min(CHUNK);
            let positions: Vec<u64> = now.iter().map(|(_, p, _)| *p).collect();
            let mut tickets: HashMap<u64, TicketView> = store
                .tickets_at(&positions)
                .await?
                .into_iter()
                .map(|t| (t.position, t))
                .collect();
            for (key, position, candidate) in now {
                if let Some(ticket) = tickets.remove(position)
                    && request.filter.matches(&ticket)
                {
                    page.push((ticket, *key, *candidate));
                    if page.len() == wanted {
                        break;
                    }
                }
            }
        }
    }
    let more = page.len() > request.limit;
    page.truncate(request.limit);
    let mut hits = Vec::with_capacity(page.len());
    for (ticket, cursor, candidate) in page {
        let highlights = highlights(store, &ticket, &candidate, request).await?;
        hits.push(Hit {
            ticket,
            highlights,
            cursor,
        });
    }
    Ok(Found { hits, more })
}

/// Every ticket passing a customer's filter, by position.
async fn own_tickets<S: ReadModels>(
    store: &S,
    filter: &TicketFilter,
) -> Result<HashMap<u64, TicketView>, StoreError> {
    let mut own = HashMap::new();
    let mut before = None;
    loop {
        let page = store.list_tickets(filter, before, CHUNK).await?;
        before = page.last().map(|t| t.position);
        let done = page.len() < CHUNK;
        own.extend(page.into_iter().map(|t| (t.position, t)));
        if done {
            return Ok(own);
        }
    }
}

/// The excerpts of one hit: its topic, its description, then its messages in posting order
/// from the first one holding a matched word, at most [`MESSAGES_SCANNED`] of them read.
async fn highlights<S: ReadModels>(
    store: &S,
    ticket: &TicketView,
    candidate: &Candidate,
    request: &SearchRequest,
) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = [&ticket.topic, &ticket.description]
        .into_iter()
        .filter_map(|t| text::excerpt(t, &request.terms))
        .take(MAX_HIGHLIGHTS)
        .collect();
    if candidate.found & found::MESSAGE == 0 {
        return Ok(out);
    }
    let mut after = candidate
        .first_message
        .and_then(|first| first.checked_sub(1));
    let mut scanned = 0;
    let mut size = FIRST_MESSAGES;
    while out.len() < MAX_HIGHLIGHTS && scanned < MESSAGES_SCANNED {
        let page = store
            .list_messages(&ticket.id, after, size, request.staff)
            .await?;
        scanned += page.len();
        after = page.last().map(|m| m.seq);
        let done = page.len() < size;
        size = MESSAGES_SCANNED - FIRST_MESSAGES;
        out.extend(
            page.iter()
                .filter_map(|m| text::excerpt(&m.content, &request.terms))
                .take(MAX_HIGHLIGHTS - out.len()),
        );
        if done {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_outweighs_the_description_and_messages() {
        assert!(weight(found::TOPIC) > weight(found::DESCRIPTION | found::MESSAGE));
        assert!(weight(found::DESCRIPTION) > weight(found::MESSAGE));
        // A better score wins over any position; at one score the newer ticket comes first.
        assert!(rank_key(2, 1) > rank_key(1, (1 << 40) + 5));
        assert!(rank_key(1, 9) > rank_key(1, 8));
        assert!(i64::try_from(rank_key(7 * MAX_WORDS as u64, u64::MAX)).is_ok());
    }
}
