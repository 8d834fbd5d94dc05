//! The web console: the page and its assets as HTTP sees them (content types, caching, the
//! Content-Security-Policy), the DEVELOPMENT-only token route, the newest-first message listing
//! it opens long conversations with, and the whole console in a real browser: Debian's Chromium
//! driven by playwright-core through `tests/browser/console.mjs`. The browser test needs
//! `/usr/bin/chromium` and `npm ci --prefix tests/browser` (scripts/test does both); without
//! them it fails, saying what is missing.

mod common;

use common::{TestServer, assert_error, assert_field_error, body_ids, next_link};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The longest the browser scenario may run; its own watchdog stops it sooner.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);
const CHROMIUM: &str = "/usr/bin/chromium";

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header among {headers:?}"))
        .to_str()
        .expect("header is text")
}

/// The asset paths the page links to, in order.
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/console/"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_page_is_html_with_a_restrictive_content_security_policy() {
    let server = TestServer::start().await;
    let (status, headers, body) = server.raw(Method::GET, "/", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks `{directive}`: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = body.as_str().expect("the page is text");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    // No inline script: every <script> has a src, and no element has an on… handler.
    for chunk in html.split("<script").skip(1) {
        let tag = &chunk[..chunk.find('>').expect("a closed script tag")];
        assert!(tag.contains(" src=\""), "an inline script: <script{tag}>");
    }
    assert!(!html.contains(" onclick=") && !html.contains(" onload="));
    assert!(html.contains("content=\"DEVELOPMENT\""));

    // Revalidation: the same page is a 304.
    let etag = header(&headers, "etag").to_string();
    let (status, _, _) = server
        .raw(Method::GET, "/", &[("if-none-match", &etag)], None)
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_kept_for_a_year() {
    let server = TestServer::start().await;
    let (_, _, body) = server.raw(Method::GET, "/", &[], None).await;
    let paths = asset_paths(body.as_str().unwrap());
    assert!(paths.len() >= 4, "{paths:?}");
    let mut prefix = None;
    for path in &paths {
        let (status, headers, _) = server.raw(Method::GET, path, &[], None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let kind = header(&headers, "content-type");
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "image/svg+xml"
        };
        assert_eq!(kind, expected, "{path}");
        assert_eq!(
            header(&headers, "cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        let build = path.split('/').nth(2).unwrap().to_string();
        assert_eq!(*prefix.get_or_insert(build.clone()), build, "one build tag");
    }
    let build = prefix.unwrap();
    // The modules the entry point imports are there too.
    for module in ["api.js", "dom.js", "history.js", "reports.js"] {
        let (status, _, _) = server
            .raw(
                Method::GET,
                &format!("/console/{build}/{module}"),
                &[],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{module}");
    }
    // Unknown files, and any file of another build, are the usual 404 envelope.
    for path in [
        format!("/console/{build}/nope.js"),
        format!("/console/{build}/../Cargo.toml"),
        "/console/0000000000000000/app.js".to_string(),
        "/console/app.js".to_string(),
    ] {
        let reply = server.raw(Method::GET, &path, &[], None).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
}

#[tokio::test]
async fn the_dev_token_route_mints_in_development() {
    let server = TestServer::start().await;
    let (status, _, body) = server
        .request(
            Method::POST,
            "/api/v1/dev/token",
            None,
            Some(&json!({"username": "Ann Lee", "role": "AGENT"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["user"],
        json!({"id": "dev-ann-lee", "username": "Ann Lee", "email": "dev-ann-lee@example.com", "role": "AGENT"})
    );
    let token = body["token"].as_str().expect("a token");
    // The token works, as an agent: staff may list every ticket.
    let (status, _, _) = server.get("/api/v1/tickets", token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = server
        .request(
            Method::POST,
            "/api/v1/dev/token",
            None,
            Some(&json!({"id": "c-42", "username": "Cy", "role": "CUSTOMER"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["id"], "c-42");

    let reply = server
        .request(
            Method::POST,
            "/api/v1/dev/token",
            None,
            Some(&json!({"username": "x", "role": "ROOT"})),
        )
        .await;
    assert_field_error(&reply, "role", "invalid_value");
    let reply = server
        .request(
            Method::POST,
            "/api/v1/dev/token",
            None,
            Some(&json!({"username": "x"})),
        )
        .await;
    assert_field_error(&reply, "role", "missing");
    let reply = server
        .request(
            Method::POST,
            "/api/v1/dev/token",
            None,
            Some(&json!({"role": "ADMIN", "admin": true})),
        )
        .await;
    assert_field_error(&reply, "username", "missing");
    assert_field_error(&reply, "admin", "unknown_field");
}

#[tokio::test]
async fn the_dev_token_route_is_not_found_in_production() {
    let server = TestServer::start_with(&[("SERVER_MODE", "PRODUCTION")]).await;
    for body in [
        Some(json!({"username": "Mallory", "role": "ADMIN"})),
        Some(json!({})),
        None,
    ] {
        let reply = server
            .request(Method::POST, "/api/v1/dev/token", None, body.as_ref())
            .await;
        assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
        assert!(reply.2.get("token").is_none());
    }
    // The console itself is served, without its "try it" form.
    let (status, _, body) = server.raw(Method::GET, "/", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("content=\"PRODUCTION\""));
}

#[tokio::test]
async fn messages_list_newest_first_with_order_desc() {
    let server = TestServer::start().await;
    let customer = server.token("u1", "CUSTOMER");
    let agent = server.token("a1", "AGENT");
    let ticket = server.create_ticket(&customer, "Long", "thread").await;
    let id = ticket["id"].as_str().unwrap();
    let mut posted = Vec::new();
    for n in 0..7 {
        let m = server.post_message(&customer, id, &format!("m{n}")).await;
        posted.push(m["id"].as_str().unwrap().to_string());
    }
    let path = format!("/api/v1/tickets/{id}/messages");
    let note = server
        .post_json(&path, &agent, json!({"content": "note", "internal": true}))
        .await
        .2;
    let newest: Vec<String> = posted.iter().rev().cloned().collect();

    // Pages of 3, newest first, following the Link; the customer never sees the note.
    let (items, pages) = server
        .walk(&format!("{path}?order=desc&limit=3"), &customer)
        .await;
    assert_eq!(common::ids(&items), newest);
    assert_eq!(pages, 3);
    let (_, headers, body) = server
        .get(&format!("{path}?order=desc&limit=3"), &customer)
        .await;
    assert_eq!(body_ids(&body), newest[..3]);
    let link = next_link(&headers).expect("a next page");
    assert!(link.contains("order=desc"), "{link}");
    // Staff see the note first; ascending stays the default.
    let (_, _, body) = server
        .get(&format!("{path}?order=desc&limit=1"), &agent)
        .await;
    assert_eq!(body_ids(&body), [note["id"].as_str().unwrap()]);
    let (_, _, body) = server.get(&format!("{path}?order=asc"), &customer).await;
    assert_eq!(body_ids(&body), posted);

    // as_of pages the same way.
    let (_, _, body) = server
        .get(
            &format!(
                "{path}?order=desc&limit=2&as_of={}",
                common::now_ms() + 60_000
            ),
            &customer,
        )
        .await;
    assert_eq!(body_ids(&body), newest[..2]);

    let reply = server.get(&format!("{path}?order=newest"), &customer).await;
    assert_field_error(&reply, "query.order", "invalid_query");
}

// ---------------------------------------------------------------------------------------------
// In the browser

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Fails (never skips) when the browser or the driver is missing.
fn require_browser(dir: &Path) {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; \
         scripts/test does it)"
    );
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "{} is missing playwright-core: run `npm ci --prefix tests/browser` first \
         (scripts/test does it)",
        dir.join("node_modules").display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_for_a_customer_and_staff_in_chromium() {
    let dir = browser_dir();
    require_browser(&dir);
    let server = TestServer::start_with(&[
        ("RATE_LIMITS", "off"),
        ("SLA_FIRST_RESPONSE_MINUTES", "NORMAL:600,URGENT:600"),
        ("SLA_RESOLUTION_MINUTES", "NORMAL:600,URGENT:600"),
    ])
    .await;
    // Screenshots go to target/ unless SCREENSHOT_DIR says (docs/screenshots to refresh them).
    let screenshots = std::env::var("SCREENSHOT_DIR").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/console-screenshots")
            .to_string_lossy()
            .into_owned()
    });
    let child = tokio::process::Command::new("node")
        .arg(dir.join("console.mjs"))
        .env("BASE_URL", &server.base)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("NODE_NO_WARNINGS", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node.js 20+ is needed): {e}"));
    let output = match tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("waiting for node failed: {e}")),
        Err(_) => panic!(
            "the browser scenario did not finish within {} s (node was killed)",
            BROWSER_TIMEOUT.as_secs()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser scenario failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
}
