//! How fast full-text search is on a big store (issue 17, ADR 0024): builds (or reuses, cached
//! under the target directory) N tickets with M messages each (default 10,000 × 100 =
//! 1,000,000 messages) through the real embedded writer, so the read models and the FTS5 index
//! are the ones the server keeps; then times 200 fixed queries (p50/p99, target p99 < 20 ms),
//! measures the index against the data, and compares posts per second with the index kept up
//! and without it (`SEARCH_INDEX=off`), side by side in one run (target: at most 15 % slower).
//!
//! With `--mongo URI` it also builds `--mongo-tickets` tickets (default 1,000) with the same
//! messages per ticket on that MongoDB and on a fresh embedded store, and times the same queries
//! on both, side by side (not with `--posts-only`); then it compares posts with the index and
//! without on that MongoDB (`--mongo-posts` posts a round, default 2,000; R rounds each way,
//! alternating, each on a fresh database).
//!
//! `cargo bench --bench search -- [--tickets N] [--messages-per-ticket M] [--posts P]
//! [--rounds R] [--posts-only] [--fresh] [--mongo URI] [--mongo-tickets N] [--mongo-posts P]`;
//! run by
//! `scripts/bench-search`. The posts comparison runs R rounds with the index and R without,
//! alternating, and prints the rate, the CPU time of the store's threads and the bytes written
//! per post; `--posts-only` skips the big store and its queries.

// Shared with the other benchmarks; this one needs only the machine line.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::machine;
use ticketd::search::{SearchRequest, search, text::query_terms};
use ticketd::store::{
    EmbeddedOptions, EmbeddedStore, MongoStore, ReadModels, SearchIndex, TicketFilter,
};
use ticketd_events::{
    Actor, EventStore, ExpectedVersion, IssueLevel, NewEvent, SupportRole, TicketEvent, UserRole,
    Via,
};

/// Concurrent appenders, so the writer's group commit has batches to fill.
const WRITERS: usize = 16;
/// The queries timed.
const QUERIES: usize = 200;

struct Args {
    tickets: usize,
    per_ticket: usize,
    posts: usize,
    rounds: usize,
    posts_only: bool,
    fresh: bool,
    mongo: Option<String>,
    mongo_tickets: usize,
    mongo_posts: usize,
}

fn args() -> Args {
    let mut args = Args {
        tickets: 10_000,
        per_ticket: 100,
        posts: 20_000,
        rounds: 2,
        posts_only: false,
        fresh: false,
        mongo: None,
        mongo_tickets: 1_000,
        mongo_posts: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |default: usize| it.next().and_then(|v| v.parse().ok()).unwrap_or(default);
        match arg.as_str() {
            "--tickets" => args.tickets = number(10_000).max(1),
            "--messages-per-ticket" => args.per_ticket = number(100),
            "--posts" => args.posts = number(20_000).max(1),
            "--rounds" => args.rounds = number(2).max(1),
            "--posts-only" => args.posts_only = true,
            "--fresh" => args.fresh = true,
            "--mongo" => args.mongo = it.next(),
            "--mongo-tickets" => args.mongo_tickets = number(1_000).max(1),
            "--mongo-posts" => args.mongo_posts = number(2_000).max(1),
            _ => {}
        }
    }
    args
}

/// splitmix64: the same words and queries on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word index with a Zipf-like skew: a few words are everywhere, most are rare.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// A vocabulary of 20,000 made-up words (syllables), some with accents, plus real ones.
fn vocabulary() -> Vec<String> {
    const REAL: &[&str] = &[
        "printer", "password", "refund", "invoice", "login", "error", "crash", "email", "billing",
        "café", "résumé", "account", "network", "update", "timeout", "server",
    ];
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "xi", "ze", "po", "qua", "bré", "str", "an",
        "el", "on", "ix", "um", "ga", "fe", "hi", "jo", "sü", "wa",
    ];
    let mut rng = Rng(7);
    let mut words: Vec<String> = REAL.iter().map(|w| w.to_string()).collect();
    while words.len() < 20_000 {
        let n = 2 + rng.below(3);
        words.push(
            (0..n)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect(),
        );
    }
    words
}

fn sentence(rng: &mut Rng, words: &[String], min: usize, spread: usize) -> String {
    let n = min + rng.below(spread);
    (0..n)
        .map(|_| words[rng.zipf(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn actor(customer: usize) -> Actor {
    Actor {
        id: format!("customer-{customer}"),
        name: "Ann".into(),
        role: UserRole::Customer,
        via: Via::Web,
    }
}

fn event(actor: &Actor, event: TicketEvent) -> NewEvent {
    let correlation = id();
    NewEvent {
        event_id: id(),
        actor: actor.clone(),
        correlation_id: correlation.clone(),
        causation_id: correlation,
        event,
    }
}

fn post(rng: &mut Rng, words: &[String], actor: &Actor, i: usize) -> NewEvent {
    event(
        actor,
        TicketEvent::MessagePosted {
            message_id: id(),
            author_id: actor.id.clone(),
            author_name: actor.name.clone(),
            author_role: actor.role,
            content: sentence(rng, words, 8, 20),
            attachments: vec![],
            internal: i % 10 == 9,
        },
    )
}

fn opening(rng: &mut Rng, words: &[String], actor: &Actor) -> NewEvent {
    event(
        actor,
        TicketEvent::TicketOpened {
            user_id: actor.id.clone(),
            user_name: actor.name.clone(),
            user_email: "ann@example.com".into(),
            user_role: UserRole::Customer,
            topic: sentence(rng, words, 3, 5),
            description: sentence(rng, words, 10, 30),
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
        },
    )
}

/// Appends `tickets` tickets with `per_ticket` messages each, 16 appenders at once, one ticket's
/// history per append.
async fn build<S: EventStore + Clone + 'static>(store: &S, tickets: usize, per_ticket: usize) {
    let words = Arc::new(vocabulary());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, next, words) = (store.clone(), Arc::clone(&next), Arc::clone(&words));
        tasks.push(tokio::spawn(async move {
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= tickets {
                    break;
                }
                let mut rng = Rng(1_000 + t as u64);
                let customer = actor(t % 2_000);
                let mut events = vec![opening(&mut rng, &words, &customer)];
                events.extend((0..per_ticket).map(|i| post(&mut rng, &words, &customer, i)));
                store
                    .append(&id(), ExpectedVersion::NoStream, events)
                    .await
                    .expect("append a ticket's history");
            }
        }));
    }
    for task in tasks {
        task.await.expect("an appender");
    }
}

/// The 200 queries: one to three words of the vocabulary, rare and common mixed, the last one
/// cut to a prefix in a third of them (search as you type).
fn queries() -> Vec<String> {
    let words = vocabulary();
    let mut rng = Rng(42);
    (0..QUERIES)
        .map(|i| {
            let n = 1 + rng.below(3);
            let mut q: Vec<String> = (0..n)
                .map(|_| words[rng.zipf(words.len().min(4_000))].clone())
                .collect();
            if i % 3 == 0
                && let Some(last) = q.last_mut()
            {
                let keep = last.chars().count().clamp(3, 4);
                *last = last.chars().take(keep).collect();
            }
            q.join(" ")
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let dir = target.join(format!("bench-search/{}x{}", args.tickets, args.per_ticket));
    let ready = dir.join("built");
    println!(
        "machine: {} (shared with other builds: compare ratios, not absolutes)",
        machine()
    );
    if !args.posts_only {
        search_section(&args, &runtime, &dir, &ready);
    }
    if let Some(uri) = &args.mongo {
        runtime.block_on(mongo_posts(uri, &args));
    }

    // Posts side by side: a fresh small store per round, the index on and off in turn.
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut bytes: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..2 * args.rounds {
        let on = round % 2 == 0;
        let temp = tempfile::tempdir().expect("a temporary directory");
        let store = EmbeddedStore::open(temp.path(), EmbeddedOptions::default()).expect("open");
        store.set_search_index(on);
        let (before, written) = (store_threads_cpu(), bytes_written());
        let rate = runtime.block_on(posts(&store, args.posts));
        let used = store_threads_cpu().since(&before);
        runtime.block_on(store.shutdown());
        bytes[usize::from(!on)].push((bytes_written() - written) as f64 / args.posts as f64);
        rates[usize::from(!on)].push(rate);
        cpu[usize::from(!on)].push(used.as_secs_f64() * 1e6 / args.posts as f64);
    }
    print_rates(
        &format!(
            "posts ({} single-message appends, {WRITERS} writers, {} rounds each, interleaved)",
            args.posts, args.rounds
        ),
        &rates,
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (with, without) = (mean(&cpu[0]), mean(&cpu[1]));
    println!(
        "posts, CPU time of the store's own threads (writer and checkpointer) per post: \
         {with:.1} µs with the index, {without:.1} µs without = {:.1} % more",
        (with / without - 1.0) * 100.0
    );
    let (with, without) = (mean(&bytes[0]), mean(&bytes[1]));
    println!(
        "posts, bytes the process wrote to files per post (the WAL, its checkpoints into the \
         file): {with:.0} with the index, {without:.0} without = {:.1} % more",
        (with / without - 1.0) * 100.0
    );
}

/// Builds (or reuses) the big store and times the queries on it, and on MongoDB if asked.
fn search_section(args: &Args, runtime: &tokio::runtime::Runtime, dir: &Path, ready: &Path) {
    if args.fresh || !ready.exists() {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("create the store's directory");
        let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("open the store");
        let started = Instant::now();
        runtime.block_on(build(&store, args.tickets, args.per_ticket));
        let secs = started.elapsed().as_secs_f64();
        println!(
            "built {} tickets × {} messages in {secs:.1} s ({:.0} events/s, index kept up)",
            args.tickets,
            args.per_ticket,
            (args.tickets * (args.per_ticket + 1)) as f64 / secs
        );
        runtime.block_on(store.shutdown());
        std::fs::write(ready, "").expect("mark the store built");
    } else {
        println!("reusing {} (--fresh rebuilds it)", dir.display());
    }
    sizes(dir);

    let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("open the store");
    runtime.block_on(time_queries(&store, "search"));
    runtime.block_on(store.shutdown());
    drop(store);

    if let Some(uri) = &args.mongo {
        runtime.block_on(mongo_beside(uri, args));
    }
}

/// Times the 200 queries on `store` (one untimed pass first, to warm the caches) and prints
/// their wall and CPU time percentiles.
async fn time_queries<S: SearchIndex + ReadModels>(store: &S, label: &str) {
    let mut times = Vec::with_capacity(QUERIES);
    let mut cpu = Vec::with_capacity(QUERIES);
    let mut hits = 0usize;
    for (round, q) in queries().iter().enumerate() {
        let request = SearchRequest {
            terms: query_terms(q),
            filter: TicketFilter::default(),
            staff: true,
            cursor: None,
            limit: 20,
        };
        let warm = search(store, &request).await.expect("search");
        let (started, cpu_started) = (Instant::now(), process_cpu());
        let found = search(store, &request).await.expect("search");
        times.push(started.elapsed());
        cpu.push(process_cpu().saturating_sub(cpu_started));
        hits += found.hits.len();
        assert_eq!(warm.hits.len(), found.hits.len(), "query {round}");
    }
    times.sort();
    cpu.sort();
    println!(
        "{label} ({QUERIES} queries, staff, 20 hits with highlights): p50 {:.2} ms, p90 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms ({:.1} hits per query)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&times, 1.0)),
        hits as f64 / QUERIES as f64
    );
    println!(
        "{label} CPU time per query (all threads of this process; what other load on the \
         machine cannot inflate): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&cpu, 0.5)),
        ms(percentile(&cpu, 0.9)),
        ms(percentile(&cpu, 0.99)),
        ms(percentile(&cpu, 1.0)),
    );
}

/// The same queries on MongoDB and on an embedded store of the same (smaller) size.
async fn mongo_beside(uri: &str, args: &Args) {
    let (tickets, per_ticket) = (args.mongo_tickets, args.per_ticket);
    let db = format!("bench_search_{}", std::process::id());
    let store = MongoStore::connect(uri, &db)
        .await
        .expect("connect to MongoDB");
    let started = Instant::now();
    build(&store, tickets, per_ticket).await;
    println!(
        "mongo: built {tickets} tickets × {per_ticket} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    time_queries(&store, "mongo search").await;
    let temp = tempfile::tempdir().expect("a temporary directory");
    let small = EmbeddedStore::open(temp.path(), EmbeddedOptions::default()).expect("open");
    build(&small, tickets, per_ticket).await;
    time_queries(&small, "embedded search, same size").await;
    small.shutdown().await;
    drop_database(uri, &db).await;
}

/// Posts with the index and without on MongoDB, alternating, each round on a fresh database.
async fn mongo_posts(uri: &str, args: &Args) {
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..2 * args.rounds {
        let on = round % 2 == 0;
        let db = format!("bench_search_{}_posts_{round}", std::process::id());
        let store = MongoStore::connect(uri, &db)
            .await
            .expect("connect to MongoDB");
        store.set_search_index(on);
        rates[usize::from(!on)].push(posts(&store, args.mongo_posts).await);
        store.shutdown().await;
        drop_database(uri, &db).await;
    }
    print_rates(
        &format!(
            "mongo posts ({} single-message appends, {WRITERS} writers, {} rounds each, \
             interleaved)",
            args.mongo_posts, args.rounds
        ),
        &rates,
    );
}

async fn drop_database(uri: &str, db: &str) {
    if let Ok(client) = mongodb::Client::with_uri_str(uri).await {
        let _ = client.database(db).drop().await;
    }
}

/// Prints the mean rates with the index (`rates[0]`) and without (`rates[1]`), and the median
/// of the pairs' ratios: each round with the index is compared with the round without it that
/// followed, as load on a shared machine drifts over a run and a drift moves both rounds of a
/// pair alike.
fn print_rates(label: &str, rates: &[Vec<f64>; 2]) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (with, without) = (mean(&rates[0]), mean(&rates[1]));
    let mut pairs: Vec<f64> = rates[0]
        .iter()
        .zip(&rates[1])
        .map(|(w, wo)| w / wo)
        .collect();
    pairs.sort_by(f64::total_cmp);
    let median = pairs.get(pairs.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{label}: {with:.0}/s with the index, {without:.0}/s without = {:.1} % slower \
         (median of the {} pairs: {:.1} % slower)",
        (1.0 - with / without) * 100.0,
        pairs.len(),
        (1.0 - median) * 100.0
    );
}

/// Posts `n` messages, one per append like the API's post, 16 appenders at once, each on
/// its own 13 tickets in turn (so no append waits for another's version).
async fn posts<S: EventStore + Clone + 'static>(store: &S, n: usize) -> f64 {
    let words = Arc::new(vocabulary());
    let next = Arc::new(AtomicUsize::new(0));
    let mut owned = Vec::new();
    let mut rng = Rng(9);
    for w in 0..WRITERS {
        let mut tickets = Vec::new();
        for t in 0..13 {
            let ticket = id();
            store
                .append(
                    &ticket,
                    ExpectedVersion::NoStream,
                    vec![opening(&mut rng, &words, &actor(w * 13 + t))],
                )
                .await
                .expect("open");
            tickets.push((ticket, 1u64));
        }
        owned.push(tickets);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut tickets) in owned.into_iter().enumerate() {
        let (store, next, words) = (store.clone(), Arc::clone(&next), Arc::clone(&words));
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(100 + w as u64);
            let mut turn = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (ticket, version) = &mut tickets[turn % 13];
                turn += 1;
                let stored = store
                    .append(
                        ticket,
                        ExpectedVersion::Exact(*version),
                        vec![post(&mut rng, &words, &actor(0), i)],
                    )
                    .await
                    .expect("post");
                *version = stored.last().map_or(*version + 1, |e| e.version);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a poster");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The CPU time this process has used, all its threads together, from the scheduler's
/// nanosecond counts (`/proc/self/task/*/schedstat`); zero where there are none.
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Bytes this process has written with write calls so far (`wchar` of `/proc/self/io`).
fn bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("wchar: "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time so far of each of the store's threads (named `ticketd-sqlite-*`, which the kernel
/// cuts to 15 characters), by thread id.
struct ThreadsCpu(std::collections::HashMap<String, u64>);

fn store_threads_cpu() -> ThreadsCpu {
    let mut threads = std::collections::HashMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.starts_with("ticketd-sqlite"));
        let nanos = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse::<u64>().ok());
        if let (true, Some(nanos)) = (named, nanos) {
            threads.insert(task.file_name().to_string_lossy().into_owned(), nanos);
        }
    }
    ThreadsCpu(threads)
}

impl ThreadsCpu {
    /// CPU time used since `earlier`, by threads alive now (a thread born since counts whole).
    fn since(&self, earlier: &ThreadsCpu) -> Duration {
        let nanos = self
            .0
            .iter()
            .map(|(tid, now)| now.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(nanos)
    }
}

/// The file, the index and the text it indexes, in MB.
fn sizes(dir: &std::path::Path) {
    let path = dir.join("ticketd.db");
    let conn = rusqlite::Connection::open(&path).expect("open the file");
    let one = |sql: &str| -> f64 {
        conn.query_row(sql, [], |r| r.get::<_, Option<f64>>(0))
            .ok()
            .flatten()
            .unwrap_or(0.0)
            / 1e6
    };
    let file = one("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size");
    let index = one("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'search_%'");
    let messages = one(
        "SELECT SUM(pgsize) FROM dbstat WHERE name = 'messages' OR name LIKE 'sqlite_autoindex_messages%'",
    );
    let text = one(
        "SELECT (SELECT SUM(LENGTH(CAST(content AS BLOB))) FROM messages WHERE deleted_at IS NULL) + \
         (SELECT SUM(LENGTH(CAST(topic AS BLOB)) + LENGTH(CAST(description AS BLOB))) FROM tickets)",
    );
    println!(
        "sizes: file {file:.1} MB, search index {index:.1} MB ({:.0} % of the file), messages \
         table {messages:.1} MB, indexed text {text:.1} MB (index = {:.2} × the text)",
        index / file.max(1e-9) * 100.0,
        index / text.max(1e-9)
    );
}
