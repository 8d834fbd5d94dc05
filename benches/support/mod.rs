//! What the benchmarks share: how the server is started, a free loopback port, a bare HTTP/1.1
//! keep-alive client on hyper (so every benchmark measures the server the same way), where the
//! release binaries are, and the machine and log lines their reports print.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One open HTTP/1.1 connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// A port nobody listens on right now, on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Opens a keep-alive connection to `addr`; its driver runs on its own task.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request with the headers the server needs, and a JSON body when given.
pub fn request(
    method: Method,
    uri: Uri,
    auth: Option<&HeaderValue>,
    body: Option<Bytes>,
) -> Request<Full<Bytes>> {
    let has_body = body.is_some();
    let mut req = Request::new(Full::new(body.unwrap_or_default()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(auth) = auth {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

/// `target/release`: where `cargo build --release` put ticketd and the examples.
pub fn release_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ticketd"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The last `lines` lines of a server's log, colour codes removed, for a failure report.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| strip_ansi(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Cores, kernel and CPU model, printed with every report: figures mean little without them.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    format!("{cores} cores (nproc), {uname}, {cpu}")
}

/// Microseconds as milliseconds.
pub fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Settings of the caller's environment that would change what is measured: every server a
/// benchmark starts has them removed, then gets the ones it needs.
const SCRUBBED_ENV: &[&str] = &[
    "SERVER_MODE",
    "MONGO_URI",
    "DB_NAME",
    "DISCORD_BOT_TOKEN",
    "GUILD_ID",
    "ERROR_WEBHOOK_URL",
    "ERROR_BOT_WEBHOOK_URL",
    "CORS_ORIGINS",
    "LOG_FORMAT",
    "SOCKET_AUTH_TIMEOUT_SECS",
    "SQLITE_SYNCHRONOUS",
    "WEB_SERVER_HOST",
    "HTTP_HEADER_TIMEOUT_SECS",
    "HTTP_KEEPALIVE_TIMEOUT_SECS",
    "HTTP_BODY_TIMEOUT_SECS",
    "RESERVED_FILE_DESCRIPTORS",
];

/// `bin` serving on `port` over `data_dir` as every benchmark runs it: tokens signed with
/// `secret`, rate limits off, no cap per address (every connection comes from 127.0.0.1,
/// ADR 0015), warnings only and no colour in its log, the caller's other settings removed.
pub fn ticketd_command(bin: &Path, data_dir: &Path, port: u16, secret: &str) -> Command {
    let mut command = Command::new(bin);
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    command
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET_KEY", secret)
        .env("RATE_LIMITS", "off")
        .env("MAX_CONNECTIONS_PER_IP", "0")
        .env("WEB_SERVER_PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    command
}

/// A token for `id` with `role`, signed with `secret` as `ticketd token` signs (valid for a
/// day), made in-process: thousands are needed before a run starts.
pub fn mint(secret: &str, id: &str, role: &str) -> Result<String, String> {
    let role = role.parse().map_err(|_| format!("{role} is not a role"))?;
    let email = format!("{id}@example.com");
    let secret = ticketd::config::Secret::new(secret);
    ticketd::auth::mint(&secret, id, id, &email, role, Some(86_400))
        .map_err(|e| format!("cannot sign a token: {e}"))
}

/// Sends `req` on `sender` and reads the whole answer, within `limit`.
pub async fn exchange(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
    limit: std::time::Duration,
) -> Result<(hyper::StatusCode, Bytes), String> {
    use http_body_util::BodyExt;
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Whether `GET path` on a new connection answers 200 within 5 s; if not, what happened, for
/// the message a benchmark gives up with when its server never gets ready.
pub async fn answers_ok(addr: SocketAddr, path: &str) -> Result<(), String> {
    let uri: Uri = path.parse().map_err(|e| format!("{path}: {e}"))?;
    let mut sender = connect(addr).await?;
    let req = request(Method::GET, uri, None, None);
    let (status, body) = exchange(&mut sender, req, std::time::Duration::from_secs(5)).await?;
    if status == hyper::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{status} {}", String::from_utf8_lossy(&body)))
    }
}
