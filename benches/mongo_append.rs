//! Appends per second through the store API, embedded and MongoDB side by side, with 1 and with
//! 64 concurrent writers (each on its own ticket, one event per append, as REST posts are).
//! MongoDB is SecantusDB, started by `scripts/mongo-test-server` unless `TICKETD_TEST_MONGO_URI`
//! names a server: a MongoDB-compatible server written in Python, several times slower than a
//! production `mongod`, so its figures show what group commit buys, not what MongoDB can do.
//!
//!     cargo bench --bench mongo_append            # 5 s per run
//!     BENCH_SECS=2 cargo bench --bench mongo_append

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ticketd::store::conformance::{new_event, new_id, opened, posted, user};
use ticketd::store::{EmbeddedOptions, EmbeddedStore, MongoStore, Store};
use ticketd_events::{EventStore, ExpectedVersion, IssueLevel, SupportRole, UserRole};

/// Runs `writers` tasks appending for `secs` and returns appends per second.
async fn appends_per_second(store: &Store, writers: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..writers {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tasks.spawn(async move {
            let customer = user(&format!("bench{i}"), UserRole::Customer);
            let ticket_id = new_id();
            store
                .append(
                    &ticket_id,
                    ExpectedVersion::NoStream,
                    vec![new_event(
                        &customer,
                        opened(&customer, SupportRole::General, IssueLevel::Normal),
                    )],
                )
                .await
                .expect("open a ticket");
            let mut version = 1;
            while Instant::now() < until {
                let event = new_event(&customer, posted(&customer, &new_id(), false));
                store
                    .append(&ticket_id, ExpectedVersion::Exact(version), vec![event])
                    .await
                    .expect("append");
                version += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a writer panicked");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Starts SecantusDB with the project's script; returns its URI and PID.
fn start_secantus() -> (String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let pid_file =
        std::env::temp_dir().join(format!("ticketd-bench-mongo.{}.pid", std::process::id()));
    let output = std::process::Command::new(format!("{root}/scripts/mongo-test-server"))
        .env("MONGO_TEST_PID_FILE", &pid_file)
        .output()
        .expect("run scripts/mongo-test-server");
    assert!(output.status.success(), "scripts/mongo-test-server failed");
    let port = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_default()
        .trim()
        .to_string();
    let _ = std::fs::remove_file(&pid_file);
    (
        format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        pid,
    )
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (uri, started_pid) = match std::env::var("TICKETD_TEST_MONGO_URI") {
        Ok(uri) if !uri.is_empty() => (uri, String::new()),
        _ => start_secantus(),
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("store appends/s, one event per append, {secs} s per run, {cores} cores");
    println!(
        "MongoDB here is SecantusDB (a Python server speaking the MongoDB protocol), far slower than a production mongod"
    );
    println!("{:<10} {:>10} {:>12}", "store", "writers", "appends/s");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let embedded = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open");
        let db = format!("bench_{}", &new_id()[24..]);
        let mongo = MongoStore::connect(&uri, &db)
            .await
            .expect("connect to MongoDB");
        for (name, store) in [
            ("embedded", Store::from(embedded)),
            ("mongodb", Store::from(mongo.clone())),
        ] {
            for writers in [1, 64] {
                let rate = appends_per_second(&store, writers, secs).await;
                println!("{name:<10} {writers:>10} {rate:>12.0}");
            }
            store.shutdown().await;
        }
        let _ = mongo.database().drop().await;
    });
    if !started_pid.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg(&started_pid)
            .status();
    }
}
