//! The benchmark's ceiling: the smallest axum server that answers one JSON route, so
//! `benches/http_load.rs` can tell how fast this framework, runtime and machine serve a
//! Ticket-sized JSON object when there is no auth, no store and no middleware. ticketd's reads are
//! measured against it in the same run.
//!
//! `cargo run --release --example ceiling -- [PORT]` (or env `PORT`; default 5100); listens on
//! 127.0.0.1 and prints one "listening" line.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// Shaped like ticketd's Ticket object (about 330 bytes of JSON), so both routes serialize the
/// same amount of work.
#[derive(Serialize)]
struct Ticket {
    id: String,
    user_id: String,
    topic: String,
    description: String,
    status: &'static str,
    created_at: i64,
    updated_at: i64,
    user_role: &'static str,
    support_role: &'static str,
    issue_level: &'static str,
}

async fn ceiling() -> Json<Ticket> {
    Json(Ticket {
        id: "0193d6a2-7b3e-7d4f-8a1b-2c3d4e5f6a7b".to_string(),
        user_id: "bench-user-0".to_string(),
        topic: "Cannot log in after the password reset".to_string(),
        description: "Since this morning the login page says my password is wrong, although I \
                      reset it twice."
            .to_string(),
        status: "OPEN",
        created_at: 1_732_400_000_000,
        updated_at: 1_732_400_000_000,
        user_role: "CUSTOMER",
        support_role: "GENERAL",
        issue_level: "NORMAL",
    })
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map(|p| p.trim().parse())
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("port: {e}")))?
        .unwrap_or(5100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = Router::new().route("/ceiling", get(ceiling));
        axum::serve(listener, app).await
    })
}
