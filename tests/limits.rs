//! What an abusive client meets (issue 18): a Socket.IO message or WebSocket frame over 16 KiB
//! closes its connection, token or not, while normal events still work; headers trickled,
//! a body withheld and an idle connection are cut off after their time-outs; one address
//! cannot hold more than its share of connections, nor all clients more than the open-file
//! limit allows, and the others are still served; out of descriptors, the server pauses and
//! recovers instead of spinning or dying; a live WebSocket outlives the HTTP time-outs;
//! `WEB_SERVER_HOST` binds one address. Real sockets on loopback, small time-outs, each test a
//! few seconds.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<TcpStream>;

/// The server's address, from the harness's base URL.
fn addr(server: &TestServer) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the base URL is http://ip:port")
}

/// A TCP connection to `to` from the loopback address `from` (all of 127.0.0.0/8 is loopback),
/// so a test can be several clients.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    let local: IpAddr = from.parse().expect("an address");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// Waits up to `within` for the server to close `stream`: true when it read end-of-file or
/// a reset (whatever arrived before is skipped).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `GET /healthz` on `stream` and returns what came back before the server closed or
/// stopped talking (1 s of silence), as text; empty when the connection was closed at once.
async fn get_healthz(stream: &mut TcpStream) -> String {
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                if complete_response(&got) {
                    break;
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// True once `got` holds a whole response: its headers and `content-length` bytes of body.
fn complete_response(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    got.len() >= end + 4 + length
}

/// The status code of a raw response, 0 when there is none.
fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON body of a raw response.
fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// A refused connection: closed at once, or answered 503 in the envelope.
fn assert_refused(response: &str) {
    if response.is_empty() {
        return;
    }
    assert_eq!(status_of(response), 503, "{response}");
    assert_eq!(
        body_of(response)["error"],
        "SERVICE_UNAVAILABLE",
        "{response}"
    );
}

/// The next Engine.IO text packet, `None` once closed. Engine.IO pings are answered and
/// skipped, as a client library does; WebSocket pings and pongs are skipped.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) if text.as_str() == "2" => {
                let _ = ws.send(Message::text("3")).await;
            }
            Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// A Socket.IO client over WebSocket, connected to "/" with `auth` (`{}`: no token).
async fn socket_io(server: &TestServer, auth: Value) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", addr(server));
    let stream = TcpStream::connect(addr(server)).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket upgrade");
    let open = next_text(&mut ws).await.expect("the Engine.IO open packet");
    assert!(open.starts_with('0'), "open packet: {open}");
    ws.send(Message::text(format!("40{auth}")))
        .await
        .expect("send connect");
    let connected = next_text(&mut ws).await.expect("the connect answer");
    assert!(connected.starts_with("40"), "connect answer: {connected}");
    ws
}

/// Waits up to `within` for the server to close the WebSocket; events before are skipped.
async fn ws_closed_within(ws: &mut Ws, within: Duration) -> bool {
    tokio::time::timeout(within, async { while next_text(ws).await.is_some() {} })
        .await
        .is_ok()
}

/// Sends `authorize` with `token` and `padding` extra bytes in the payload, with ack id 1, and
/// returns the ack's payload.
async fn authorize(ws: &mut Ws, token: &str, padding: usize) -> Value {
    let event = json!(["authorize", {"token": token, "padding": "p".repeat(padding)}]);
    ws.send(Message::text(format!("421{event}")))
        .await
        .expect("send authorize");
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let text = next_text(ws).await.expect("the socket stays open");
            if let Some(ack) = text.strip_prefix("431") {
                return serde_json::from_str::<Value>(ack).expect("ack payload");
            }
        }
    })
    .await
    .expect("the authorize ack within 5 s");
    reply[0].clone()
}

/// A WebSocket frame from a client: FIN set, masked with a zero key (so the payload is sent
/// as is), announcing `announced` bytes of which `payload` is what follows.
fn client_frame(opcode: u8, fin: bool, announced: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 | opcode } else { opcode }];
    if announced < 126 {
        frame.push(0x80 | announced as u8);
    } else if announced <= u64::from(u16::MAX) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(announced as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&announced.to_be_bytes());
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;

/// Anonymous sockets stay for a minute here, so only the size limit can close them.
const PATIENT_SOCKETS: (&str, &str) = ("SOCKET_AUTH_TIMEOUT_SECS", "60");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_socket_message_closes_the_connection_even_without_a_token() {
    let server = TestServer::start_with(&[PATIENT_SOCKETS]).await;
    let token = server.token("ann", "CUSTOMER");

    // A normal event, near the limit, still works.
    let mut ws = socket_io(&server, json!({})).await;
    let ack = authorize(&mut ws, &token, 12 * 1024).await;
    assert_eq!(ack["ok"], json!(true), "{ack}");

    // A 70 KB event from a socket that never showed a token: closed.
    let mut ws = socket_io(&server, json!({})).await;
    let event = json!(["authorize", {"padding": "p".repeat(70_000)}]);
    let _ = ws.send(Message::text(format!("42{event}"))).await;
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "a 70 KB message was accepted"
    );

    // The same from an authorized socket: closed too.
    let mut ws = socket_io(&server, json!({ "token": token })).await;
    let _ = ws.send(Message::text(format!("42{event}"))).await;
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "a 70 KB message was accepted from an authorized socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_or_fragmented_message_closes_the_connection() {
    let server = TestServer::start_with(&[PATIENT_SOCKETS]).await;

    // A frame announcing 15 MiB: refused on its header, before its payload is sent.
    let mut ws = socket_io(&server, json!({})).await;
    let header = client_frame(TEXT, true, 15 << 20, b"42[\"x\",\"");
    ws.get_mut()
        .write_all(&header)
        .await
        .expect("send a header");
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "the server waited for a 15 MiB frame"
    );

    // A message in 4 KiB fragments, each under the frame limit, 40 KiB in all: refused.
    let mut ws = socket_io(&server, json!({})).await;
    let mut fragments = client_frame(TEXT, false, 4096, &[b'4'; 4096]);
    for _ in 0..9 {
        fragments.extend(client_frame(CONTINUATION, false, 4096, &[b'x'; 4096]));
    }
    let _ = ws.get_mut().write_all(&fragments).await;
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "a 40 KiB fragmented message was accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_idle_new_connections_are_cut_off() {
    let server = TestServer::start_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("HTTP_KEEPALIVE_TIMEOUT_SECS", "60"),
    ])
    .await;
    let to = addr(&server);

    // Slowloris: a header line every 300 ms, never the blank line that ends them.
    let started = Instant::now();
    let mut slow = connect_from("127.0.0.1", to).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n")
        .await
        .expect("start a request");
    let (mut reader, mut writer) = slow.split();
    let trickle = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let mut buf = [0u8; 1024];
    let closed = tokio::select! {
        () = trickle => false,
        read = reader.read(&mut buf) => matches!(read, Ok(0) | Err(_)),
    };
    assert!(closed, "the slow headers were not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off only after {:?}",
        started.elapsed()
    );

    // A connection that sends nothing at all.
    let mut idle = connect_from("127.0.0.1", to).await;
    assert!(
        closed_within(&mut idle, Duration::from_secs(4)).await,
        "a silent new connection stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_its_own_timeout() {
    let server = TestServer::start_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("HTTP_KEEPALIVE_TIMEOUT_SECS", "3"),
    ])
    .await;
    let mut stream = connect_from("127.0.0.1", addr(&server)).await;
    let response = get_healthz(&mut stream).await;
    assert_eq!(status_of(&response), 200, "{response}");
    let answered = Instant::now();

    // Idle past the header time-out, within the keep-alive one: still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = get_healthz(&mut stream).await;
    assert_eq!(
        status_of(&response),
        200,
        "an idle keep-alive connection was closed after the header time-out: {response}"
    );

    // Then idle for good: closed after about 3 s.
    let answered_again = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(6)).await,
        "an idle keep-alive connection stayed open"
    );
    let idle = answered_again.elapsed();
    assert!(
        idle >= Duration::from_millis(2500),
        "closed after {idle:?} idle, before the keep-alive time-out ({:?} since the first answer)",
        answered.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_body_is_answered_408_in_the_envelope() {
    let server = TestServer::start_with(&[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let token = server.token("ann", "CUSTOMER");
    let mut stream = connect_from("127.0.0.1", addr(&server)).await;
    let head = format!(
        "POST /api/v1/tickets HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"topic\": \"sl"
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete_response(&got) {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let response = String::from_utf8_lossy(&got).into_owned();
    assert_eq!(status_of(&response), 408, "{response:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let body = body_of(&response);
    assert_eq!(body["error"], "REQUEST_TIMEOUT", "{response}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        response.to_ascii_lowercase().contains("x-request-id:"),
        "{response}"
    );
    assert!(
        closed_within(&mut stream, Duration::from_secs(2)).await,
        "the connection stayed open after the 408"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_cap_and_others_are_served() {
    let server = TestServer::start_with(&[("MAX_CONNECTIONS_PER_IP", "3")]).await;
    let to = addr(&server);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.3", to).await;
        let response = get_healthz(&mut stream).await;
        assert_eq!(status_of(&response), 200, "{response}");
        held.push(stream);
    }
    let mut fourth = connect_from("127.0.0.3", to).await;
    assert_refused(&get_healthz(&mut fourth).await);

    // Another address is served meanwhile.
    let mut other = connect_from("127.0.0.4", to).await;
    let response = get_healthz(&mut other).await;
    assert_eq!(status_of(&response), 200, "{response}");

    // A connection closed gives its place back.
    held.pop();
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut again = connect_from("127.0.0.3", to).await;
            if status_of(&get_healthz(&mut again).await) == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the freed place was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_never_take_the_reserved_descriptors() {
    // Four connections in all for clients, the rest of the open-file limit kept for the
    // server; one address gets at most half of them.
    let limit = ticketd::serve::files::limit().expect("an open-file limit");
    let reserve = (limit - 4).to_string();
    let server = TestServer::start_with(&[("RESERVED_FILE_DESCRIPTORS", reserve.as_str())]).await;
    let to = addr(&server);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from("127.0.0.5", to).await;
        let response = get_healthz(&mut stream).await;
        assert_eq!(status_of(&response), 200, "{response}");
        held.push(stream);
    }
    let mut third = connect_from("127.0.0.5", to).await;
    assert_refused(&get_healthz(&mut third).await);

    // New addresses until the server is full (the harness may hold one connection itself).
    let mut admitted = 0;
    for last in 20..30 {
        let mut stream = connect_from(&format!("127.0.0.{last}"), to).await;
        let response = get_healthz(&mut stream).await;
        if status_of(&response) != 200 {
            assert_refused(&response);
            break;
        }
        admitted += 1;
        held.push(stream);
    }
    assert!(
        (1..=2).contains(&admitted),
        "{admitted} more connections admitted, 4 in all expected"
    );
    let mut late = connect_from("127.0.0.30", to).await;
    assert_refused(&get_healthz(&mut late).await);

    // Those it holds are still served, and a place freed is taken by the next client.
    let response = get_healthz(&mut held[0]).await;
    assert_eq!(status_of(&response), 200, "{response}");
    held.pop();
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut again = connect_from("127.0.0.31", to).await;
            if status_of(&get_healthz(&mut again).await) == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the freed place was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_websocket_outlives_the_http_timeouts() {
    let server = TestServer::start_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("HTTP_KEEPALIVE_TIMEOUT_SECS", "1"),
        ("HTTP_BODY_TIMEOUT_SECS", "1"),
    ])
    .await;
    let token = server.token("ann", "CUSTOMER");
    let mut ws = socket_io(&server, json!({ "token": token })).await;
    assert!(
        !ws_closed_within(&mut ws, Duration::from_secs(3)).await,
        "the WebSocket was closed by an HTTP time-out"
    );
    let ack = authorize(&mut ws, &token, 0).await;
    assert_eq!(ack["ok"], json!(true), "{ack}");
}

/// An Engine.IO session that never connects to a namespace is closed when an anonymous socket
/// would be, not after socketioxide's 45 s, during which it held the session's memory even
/// once the client had gone (ADR 0030).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_connects_is_closed_with_the_anonymous_timeout() {
    let server = TestServer::start_with(&[("SOCKET_AUTH_TIMEOUT_SECS", "1")]).await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        addr(&server)
    );
    let stream = TcpStream::connect(addr(&server)).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket upgrade");
    let open = next_text(&mut ws).await.expect("the Engine.IO open packet");
    assert!(open.starts_with('0'), "open packet: {open}");
    // Pings are answered, so only the wait for the CONNECT can end the session.
    assert!(
        ws_closed_within(&mut ws, Duration::from_secs(5)).await,
        "a session that never sent CONNECT outlived SOCKET_AUTH_TIMEOUT_SECS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_server_host_binds_that_address_only() {
    let data = tempfile::tempdir().expect("a data directory");
    let server = BinaryServer::spawn_with(data.path(), &[("WEB_SERVER_HOST", "127.0.0.1")]).await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let (status, _, _) = server
        .raw(reqwest::Method::GET, "/healthz", &[], None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    // 127.0.0.2 is loopback too, but not the address asked for.
    let elsewhere = TcpStream::connect(("127.0.0.2", port)).await;
    assert!(
        elsewhere.is_err(),
        "WEB_SERVER_HOST=127.0.0.1 also accepted a connection on 127.0.0.2"
    );
}

/// True when `GET /healthz` on a new connection to `to` answers 200.
async fn healthy(to: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(to).await else {
        return false;
    };
    status_of(&get_healthz(&mut stream).await) == 200
}

/// CPU seconds `pid` has used (user + system), from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_pauses_and_recovers() {
    // The real binary with a hard limit of 64 open files and no reserve, so accept() itself
    // fails with EMFILE once clients hold the rest.
    let data = tempfile::tempdir().expect("a data directory");
    let cwd = tempfile::tempdir().expect("a working directory");
    let log = cwd.path().join("ticketd.log");
    let template = binary_command(data.path(), cwd.path());
    let mut command = std::process::Command::new("prlimit");
    command
        .args(["--nofile=64:64", "--"])
        .arg(template.get_program())
        .arg("serve")
        .current_dir(cwd.path());
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command
        .env("RESERVED_FILE_DESCRIPTORS", "0")
        .env("MAX_CONNECTIONS_PER_IP", "0")
        .env("HTTP_HEADER_TIMEOUT_SECS", "60")
        .env("RUST_LOG", "warn");
    // The port is free when picked, but another test's client may take it before the server
    // binds it: then try another.
    let mut attempt = 0;
    let (mut child, to) = loop {
        attempt += 1;
        let port = free_port();
        let out = std::fs::File::create(&log).expect("a log file");
        let mut child = command
            .env("WEB_SERVER_PORT", port.to_string())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prlimit and the ticketd binary");
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let mut up = false;
        while started.elapsed() < Duration::from_secs(30) && child.try_wait().unwrap().is_none() {
            if healthy(to).await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if up {
            break (child, to);
        }
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            attempt < 3 && text.contains("Address already in use"),
            "the server did not start:\n{text}"
        );
    };

    // More connections than the process has descriptors: the kernel queues them all.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(to).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_secs(child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_secs(child.id()) - before;
    assert!(
        used < 0.5,
        "the server used {used:.2} s of CPU in 2 s while out of descriptors"
    );
    assert!(child.try_wait().unwrap().is_none(), "the server died");

    // The clients leave; the server serves again.
    drop(idle);
    let recovered = tokio::time::timeout(Duration::from_secs(10), async {
        while !healthy(to).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(recovered.is_ok(), "the server did not serve again:\n{text}");
    let warnings = text.matches("cannot accept connections").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} warnings about accept() in a few seconds:\n{text}"
    );
}
