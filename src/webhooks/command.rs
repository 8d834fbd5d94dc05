//! `ticketd webhooks status | resume | replay --from P`: what an operator needs when a partner
//! was down or lost data. They read and write the webhook links (see [`super::state`]) directly,
//! on either store, while servers run; a running deliverer looks at them every second.

use super::state;
use crate::audit::Target;
use crate::audit::timeline::iso8601;
use crate::store::embedded::beside::Beside;
use crate::store::{Links, MongoStore};
use std::process::ExitCode;
use ticketd_events::{EventStore, StoreError};

/// What the commands do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Print the checkpoint, the lag, whether paused, and the last failure.
    Status,
    /// Lift a pause left by a 410.
    Resume,
    /// Deliver again from this position: it is the first event sent.
    Replay {
        /// The first position delivered again.
        from: u64,
    },
}

/// The store as the commands see it.
enum Control {
    Embedded(Beside),
    Mongo(MongoStore),
}

impl Control {
    async fn open(target: &Target) -> Result<Self, StoreError> {
        match target {
            Target::Embedded(dir) => Beside::open(dir).map(Control::Embedded),
            Target::Mongo { uri, db } => MongoStore::connect(uri, db).await.map(Control::Mongo),
        }
    }

    async fn head(&self) -> Result<u64, StoreError> {
        match self {
            Control::Embedded(s) => s.head(),
            Control::Mongo(s) => s.head().await,
        }
    }
}

impl Links for Control {
    async fn load_link(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Control::Embedded(s) => s.load_link(kind, key).await,
            Control::Mongo(s) => s.load_link(kind, key).await,
        }
    }

    async fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        match self {
            Control::Embedded(s) => s.save_link(kind, key, value).await,
            Control::Mongo(s) => s.save_link(kind, key, value).await,
        }
    }

    async fn claim_link(&self, kind: &str, key: &str, value: &str) -> Result<String, StoreError> {
        match self {
            Control::Embedded(s) => s.claim_link(kind, key, value).await,
            Control::Mongo(s) => s.claim_link(kind, key, value).await,
        }
    }
}

/// Runs `action` on `target`, printing on stdout; exits 1 on a store error, 2 on a bad position.
pub fn webhooks_command(target: &Target, action: Action) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ticketd webhooks: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let control = match Control::open(target).await {
            Ok(control) => control,
            Err(e) => {
                eprintln!("ticketd webhooks: {e}");
                return ExitCode::FAILURE;
            }
        };
        let done = match action {
            Action::Status => status(&control).await,
            Action::Resume => resume(&control).await,
            Action::Replay { from } => replay(&control, from).await,
        };
        if let Control::Mongo(store) = &control {
            store.shutdown().await;
        }
        match done {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ticketd webhooks: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn status(control: &Control) -> Result<ExitCode, StoreError> {
    let head = control.head().await?;
    match state::checkpoint(control).await? {
        None => {
            println!("checkpoint: none (webhooks were never switched on here)");
            println!("head: {head}");
        }
        Some(checkpoint) => {
            println!("checkpoint: {checkpoint}");
            println!("head: {head}");
            println!("lag: {}", head.saturating_sub(checkpoint));
        }
    }
    match state::paused(control).await? {
        Some(paused) => println!(
            "state: paused since {} (the partner answered 410 Gone to position {}); `ticketd webhooks resume` resumes",
            iso8601(paused.at),
            paused.position
        ),
        None => println!("state: delivering"),
    }
    if let Some(from) = state::replay_request(control).await? {
        println!("replay: from position {from}, not yet taken up by a deliverer");
    }
    match state::last_failure(control).await? {
        Some(f) => println!(
            "last failure: {} at {} (position {}, attempt {})",
            f.error,
            iso8601(f.at),
            f.position,
            f.attempt
        ),
        None => println!("last failure: none"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn resume(control: &Control) -> Result<ExitCode, StoreError> {
    match state::paused(control).await? {
        None => println!("webhook delivery is not paused; nothing to do"),
        Some(paused) => {
            state::set_paused(control, None).await?;
            println!(
                "webhook delivery resumes with position {} (a running deliverer notices within a second)",
                paused.position
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(control: &Control, from: u64) -> Result<ExitCode, StoreError> {
    let head = control.head().await?;
    if from == 0 || from > head + 1 {
        eprintln!(
            "ticketd webhooks replay: --from must be a position from 1 to {} (the head is {head})",
            head + 1
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(checkpoint) = state::checkpoint(control).await?
        && from > checkpoint
    {
        println!(
            "position {from} has not been delivered yet (the checkpoint is {checkpoint}): nothing to replay; delivery goes on from position {}",
            checkpoint + 1
        );
        return Ok(ExitCode::SUCCESS);
    }
    state::set_replay_request(control, Some(from)).await?;
    println!(
        "webhook replay requested: position {from} is delivered next, then every later one (a running deliverer takes this up within a second)"
    );
    Ok(ExitCode::SUCCESS)
}
