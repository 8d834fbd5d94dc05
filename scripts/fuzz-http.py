#!/usr/bin/env python3
"""Raw HTTP/1.1 fuzzer for ticketd (issue 19 part 4), driven by scripts/fuzz-http.

    python3 scripts/fuzz-http.py --bin PATH --json PATH [--seconds N] [--concurrency N]
                                 [--seed N] [--before S] [--after S]
    python3 scripts/fuzz-http.py --self-test


Python 3 standard library only. Starts the server (PRODUCTION mode, rate limits off, loopback,
a temporary DATA_DIR, header and body time-outs of 5 s so that slow probes end quickly; stopped
at exit), then throws hand-made byte streams at it over raw TCP from --concurrency lanes for
--seconds: malformed request lines, bad, huge and duplicate headers (Content-Length conflicts,
Transfer-Encoding with Content-Length, bad and truncated chunks), oversized header blocks and
bodies, invalid UTF-8 and bad JSON on real endpoints with valid and forged JWTs, pipelining and
request-smuggling shapes, slow and half-sent requests, and random mutations of valid requests.

Every probe must end answered (an HTTP status line came back) or closed by the server within a
bound: each probe waits past the server's own time-outs, so silence is never allowed. Answers
must be parseable HTTP, must not be 5xx (505 to an HTTP version the server does not speak is
the one documented exception), an error with a body must be the JSON envelope, pipelined
requests must each be answered in order unless the server closed after an error, and a request
hidden in another's body must never be answered. Meanwhile a control client (an authorized
customer posting a message to its ticket every 100 ms over keep-alive) measures its latency
before, during and after: its p99 during and after must stay within max(3 x before, before +
250 ms). Afterwards the server must be alive, /healthz must answer and its log must hold no
panic. Prints a table per probe and writes the JSON record; exits 1 when a rule is broken.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HEADER_TIMEOUT = 5
BODY_TIMEOUT = 5
# Longer than either time-out: a server that neither answers nor closes by then never will.
WAIT = max(HEADER_TIMEOUT, BODY_TIMEOUT) + 3.0
HOST = "127.0.0.1"

# ---------------------------------------------------------------------------------------------
# Arguments, the server


def arguments():
    ap = argparse.ArgumentParser()
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--bin")
    ap.add_argument("--json")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--before", type=float, default=10)
    ap.add_argument("--after", type=float, default=10)
    return ap.parse_args()


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Tokens:
    def __init__(self, secret):
        self.secret = secret.encode()

    def sign(self, claims, header=None, key=None):
        head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        signing = f"{head}.{body}".encode()
        mac = hmac.new(key or self.secret, signing, hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"

    def user(self, uid, role):
        return self.sign({"id": uid, "username": uid, "email": f"{uid}@example.com", "role": role})


class Server:
    def __init__(self, binary, work):
        self.port = free_port()
        self.secret = secrets.token_hex(32)
        self.log_path = os.path.join(work, "server.log")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATA_DIR": os.path.join(work, "data"),
            "WEB_SERVER_HOST": HOST,
            "WEB_SERVER_PORT": str(self.port),
            "JWT_SECRET_KEY": self.secret,
            "SERVER_MODE": "PRODUCTION",
            "RATE_LIMITS": "off",
            "HTTP_HEADER_TIMEOUT_SECS": str(HEADER_TIMEOUT),
            "HTTP_BODY_TIMEOUT_SECS": str(BODY_TIMEOUT),
            "RUST_LOG": "warn",
        }
        self.log = open(self.log_path, "wb")
        # Its working directory is the scratch one, so no .env of the repository is read.
        self.proc = subprocess.Popen([binary, "serve"], cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise SystemExit(f"fuzz-http: the server exited while starting (see {self.log_path})")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("fuzz-http: the server did not become ready")

    def get(self, path, timeout=5):
        c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def request(self, method, path, token, body=None):
        c = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            c.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    def alive(self):
        return self.proc.poll() is None

    def healthy(self):
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Reading answers off the wire


class Garbled(Exception):
    pass


def parse_responses(data, head=False):
    """Splits what the server wrote into complete responses [(status, headers, body)]; returns
    them and whether bytes of an unfinished response remain. Raises Garbled for bytes that are
    not an HTTP/1.x response. `head`: the requests were HEAD, whose answers have no body."""
    out = []
    i = 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            if not data[i:].startswith(b"HTTP/1."[: len(data) - i]):
                raise Garbled(data[i : i + 60])
            return out, True
        lines = data[i:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise Garbled(data[i : i + 60])
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        pos = end + 4
        if head or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(data) < pos + n:
                return out, True
            body = data[pos : pos + n]
            pos += n
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = b""
            while True:
                le = data.find(b"\r\n", pos)
                if le < 0:
                    return out, True
                size = int(data[pos:le].split(b";")[0], 16)
                pos = le + 2
                if len(data) < pos + size + 2:
                    return out, True
                body += data[pos : pos + size]
                pos += size + 2
                if size == 0:
                    break
        else:
            # Delimited by the close: complete only once the connection is gone (the caller
            # says so by calling again with everything).
            body = data[pos:]
            pos = len(data)
        if 100 <= status < 200 and status != 101:
            i = pos
            continue
        out.append((status, headers, body))
        i = pos
    return out, False


def exchange(port, steps, expect, wait=WAIT, stop_after=None, head=False):
    """Sends `steps` (bytes, or ("sleep", seconds)) on a new connection and reads until the
    server closes, `stop_after` responses have come (default `expect`; 0: read on until the
    close or the quiet time), or `wait` seconds pass with nothing new.
    Returns {outcome, responses, closed, secs, detail}."""
    t0 = time.monotonic()
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = b""
    closed = False
    send_error = None
    try:
        for step in steps:
            if isinstance(step, tuple):
                time.sleep(step[1])
                continue
            try:
                s.sendall(step)
            except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
                send_error = type(e).__name__
                break
        s.settimeout(0.25)
        last = time.monotonic()
        want = stop_after if stop_after is not None else expect
        while True:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
                last = time.monotonic()
                if want:
                    try:
                        got, partial = parse_responses(data, head)
                        if len(got) >= want and not partial:
                            break
                    except Garbled:
                        pass
            except socket.timeout:
                if time.monotonic() - last > wait:
                    break
            except (ConnectionResetError, OSError):
                closed = True
                break
    finally:
        s.close()
    secs = time.monotonic() - t0
    try:
        responses, partial = parse_responses(data, head)
        garbled = None
    except Garbled as g:
        responses, partial, garbled = [], False, g.args[0]
    if responses:
        outcome = "answered"
    elif closed or send_error:
        outcome = "closed"
    else:
        outcome = "silent"
    detail = " ".join(f"{st}" for st, _, _ in responses[:6])
    return {
        "outcome": outcome,
        "responses": responses,
        "partial": partial,
        "garbled": garbled,
        "closed": closed or bool(send_error),
        "secs": secs,
        "detail": detail or (send_error or ("closed" if closed else "")),
    }


# ---------------------------------------------------------------------------------------------
# Probes


class Ctx:
    """What probes need: the port, tokens, ids of real things, a random source."""

    def __init__(self, server, rng):
        self.port = server.port
        self.rng = rng
        t = Tokens(server.secret)
        self.customer = t.user("fz-cust", "CUSTOMER")
        self.admin = t.user("fz-admin", "ADMIN")
        self.agent = t.user("fz-agent", "AGENT")
        status, ticket = server.request("POST", "/api/v1/tickets", self.customer, {"topic": "fuzz", "description": "target"})
        if status != 200:
            raise SystemExit(f"fuzz-http: could not open the target ticket ({status} {ticket})")
        self.ticket = ticket["id"]
        status, msg = server.request("POST", f"/api/v1/tickets/{self.ticket}/messages", self.customer, {"content": "hello"})
        if status != 200:
            raise SystemExit(f"fuzz-http: could not post the target message ({status} {msg})")
        self.message = msg["id"]
        now = int(time.time())
        other = b"wrong-" + secrets.token_bytes(16)
        self.forged = {
            "wrong signature": t.sign({"id": "x", "username": "x", "email": "x@example.com", "role": "ADMIN"}, key=other),
            "alg none": b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(b'{"id":"x","username":"x","email":"x@example.com","role":"ADMIN"}') + ".",
            "expired": t.sign({"id": "x", "username": "x", "email": "x@example.com", "role": "ADMIN", "exp": now - 3600}),
            "unknown role": t.sign({"id": "x", "username": "x", "email": "x@example.com", "role": "ROOT"}),
            "claims missing": t.sign({"role": "ADMIN"}),
            "claims of wrong types": t.sign({"id": 7, "username": [], "email": None, "role": {"a": 1}}),
            "not base64": "@@@.###.$$$",
            "one part": "abc",
            "empty": "",
            "huge (60 KB)": "a" * 60000,
            "RS256 header": t.sign({"id": "x", "username": "x", "email": "x@example.com", "role": "ADMIN"}, header={"alg": "RS256", "typ": "JWT"}),
            "signature of invalid UTF-8 claims": b64(b'{"alg":"HS256"}') + "." + b64(b'{"id":"\xff\xfe"}') + ".AAAA",
        }

    def pick(self, xs):
        return self.rng.choice(xs)


def req(method, target, headers=(), body=b"", version="HTTP/1.1", host=True, length=True, close=False):
    lines = [f"{method} {target} {version}".encode("latin-1") if isinstance(target, str) else method.encode() + b" " + target + b" " + version.encode()]
    if host:
        lines.append(b"Host: 127.0.0.1")
    for h in headers:
        lines.append(h if isinstance(h, bytes) else h.encode("latin-1"))
    if length and body and not any((h if isinstance(h, bytes) else h.encode()).lower().startswith((b"content-length", b"transfer-encoding")) for h in headers):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def auth(token):
    return f"Authorization: Bearer {token}"


JSON = "Content-Type: application/json"


class Probe:
    """One kind of hostile input: make(ctx) -> dict(steps, expect[, wait, stop_after,
    max_responses, allow_5xx, no_healthz, deadline]).

    expect: complete requests sent (each must be answered unless the server closes after an
    error); max_responses: more answers than this means a hidden request was served;
    deadline: the server must have closed (or answered) within this many seconds."""

    def __init__(self, family, name, make):
        self.family = family
        self.name = name
        self.make = make


PROBES = []


def probe(family, name):
    def register(make):
        PROBES.append(Probe(family, name, make))
        return make

    return register


def simple(steps, expect=1, **kw):
    return dict(steps=[steps] if isinstance(steps, bytes) else steps, expect=expect, **kw)


# --- malformed request lines ------------------------------------------------------------------

F = "request line"


@probe(F, "bad method token")
def _(c):
    m = c.pick([b"G E T", b"GET\x00", b"\x00GET", b"GE(T", b"G\xffT", b"{}", b"GET\t", b"\x16\x03\x01\x02\x00", b"PRI * HTTP/2.0\r\n\r\nSM"])
    return simple(m + b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


@probe(F, "unknown or lowercase method")
def _(c):
    m = c.pick(["get", "FOO", "BREW", "PROPFIND", "TRACE", "CONNECT", "M" * 2000, "OPTIONS", "HEAD"])
    path = c.pick(["/healthz", "/api/v1/tickets", f"/api/v1/tickets/{c.ticket}", "*"])
    return simple(req(m, path, [auth(c.customer)], close=True), head=m == "HEAD")


@probe(F, "empty method")
def _(c):
    return simple(b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


@probe(F, "bad HTTP version")
def _(c):
    v = c.pick(["HTTP/1.2", "HTTP/2.0", "HTTP/3", "HTTP/9.9", "HTTP/0.9", "HTTP/1.1x", "HTTP/11", "http/1.1", "HTTP/1.1 ", "HTTP/", "HTTP/1.", "HTTP/1.01", "HTTP/-1.1", "HTTPS/1.1", "HTTP/1.1\x00"])
    return simple(f"GET /healthz {v}\r\nHost: x\r\n\r\n".encode("latin-1"), allow_5xx={505})


@probe(F, "no version (HTTP/0.9 style)")
def _(c):
    return simple(b"GET /healthz\r\n\r\n")


@probe(F, "missing or doubled spaces")
def _(c):
    line = c.pick([b"GET/healthz HTTP/1.1", b"GET /healthzHTTP/1.1", b"GET  /healthz HTTP/1.1", b"GET /healthz  HTTP/1.1", b"GET\t/healthz\tHTTP/1.1", b"GET /healthz HTTP/1.1 extra", b"GET", b"GET /healthz", b"/healthz HTTP/1.1"])
    return simple(line + b"\r\nHost: x\r\n\r\n")


@probe(F, "absurd URI")
def _(c):
    target = c.pick([
        "*", "http://evil.example/healthz", "http://127.0.0.1/healthz", "//healthz", "/../../../etc/passwd", "/./healthz",
        "/api/v1/tickets/" + "a" * 10000, "/api/v1/tickets?" + "&".join(f"p{i}={i}" for i in range(3000)),
        "/healthz#frag", "/healthz?", "/healthz??&&==", "example.com:443", "/api/v1//tickets", "/api/v1/tickets/../openapi.json",
        "/" + "/" * 5000, "/api/v1/tickets?limit=" + "9" * 400, "/api/v1/tickets?cursor=" + "A" * 9000,
        f"/api/v1/tickets/{c.ticket}/messages?limit=-1&order=sideways", "/api/v1/search?q=" + "%28" * 2000,
    ])
    return simple(req("GET", target, [auth(c.customer)], close=True))


@probe(F, "URI over the 64 KiB limit")
def _(c):
    return simple(req("GET", "/healthz?" + "x" * c.pick([65534, 70000, 200000]), close=True))


@probe(F, "raw non-ASCII / invalid UTF-8 in URI")
def _(c):
    t = c.pick([b"/api/v1/tickets/\xff\xfe", b"/h\xc3\xa9althz", b"/api/v1/search?q=\xff", b"/\xe2\x80", b"/api/v1/tickets?status=\xc0\xaf"])
    return simple(b"GET " + t + b" HTTP/1.1\r\nHost: x\r\n" + auth(c.customer).encode() + b"\r\n\r\n")


@probe(F, "percent-encoding garbage")
def _(c):
    t = c.pick([
        "/api/v1/tickets/%", "/api/v1/tickets/%zz", "/api/v1/tickets/%FF%FE", "/api/v1/tickets/%00", "/api/v1/tickets/%2e%2e%2f%2e%2e",
        "/api/v1/tickets/%u0041", "/api/v1/tickets?limit=%ff", "/api/v1/tickets?cursor=%00", "/api/v1/tickets?status=%C0%AF",
        f"/api/v1/tickets/{c.ticket}/messages/%ED%A0%80", "/api/v1/search?q=%", "/api/v1/replies/%2F%2F", "/api/v1/blocks/%FF",
        "/api/v1/tickets?%=%&%%=", "/%2e%2e/%2e%2e/etc/passwd", "/api/v1/events?after=%2D1",
    ])
    return simple(req("GET", t, [auth(c.pick([c.customer, c.admin]))], close=True))


@probe(F, "NUL and control bytes")
def _(c):
    raw = c.pick([
        b"GET /health\x00z HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX-A\x00: 1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nX-A: \x01\x02\x7f\r\n\r\n",
        b"GET /healthz HTTP/1.1\nHost: x\n\n", b"GET /healthz HTTP/1.1\rHost: x\r\r", b"\r\n\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\x00\r\n\r\n", b"\x00" * 64, b"\x7fELF\x02\x01\x01" + bytes(range(256)),
        b"GET /he\x1balthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ])
    return simple(raw)


# --- bad, huge and duplicate headers -------------------------------------------------------------

F = "headers"


def post_body(c, body, headers, token=None):
    return (
        f"POST /api/v1/tickets/{c.ticket}/messages HTTP/1.1\r\nHost: x\r\n{auth(token or c.customer)}\r\n{JSON}\r\n".encode()
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
        + body
    )


@probe(F, "conflicting Content-Length")
def _(c):
    body = b'{"content":"cl"}'
    h = c.pick([
        [b"Content-Length: 16", b"Content-Length: 17"], [b"Content-Length: 16, 17"], [b"Content-Length: 16", b"Content-Length: 16"],
        [b"Content-Length: 16, 16"], [b"Content-Length: 16", b"Content-Length: 0"],
    ])
    return simple(post_body(c, body, h + [b"Connection: close"]))


@probe(F, "negative, overflowing or odd Content-Length")
def _(c):
    v = c.pick([b"-1", b"-16", b"99999999999999999999999", b"18446744073709551616", b"18446744073709551615", b"+16", b"0x10", b"16 16", b"", b" ", b"1e3", b"16.0", b"\xff", b"0016", b"9223372036854775807"])
    return simple(post_body(c, b'{"content":"cl"}', [b"Content-Length: " + v, b"Connection: close"]))


@probe(F, "Content-Length larger than the body")
def _(c):
    # A complete header section whose body never fully comes: 408 after the body time-out.
    return simple(post_body(c, b'{"content":', [b"Content-Length: " + str(c.pick([100, 65536, 10**9])).encode()]), deadline=BODY_TIMEOUT + 3)


@probe(F, "Content-Length smaller than the body")
def _(c):
    body = b'{"content":"short"}'
    return simple(post_body(c, body, [b"Content-Length: 5", b"Connection: close"]))


@probe(F, "bad Transfer-Encoding")
def _(c):
    te = c.pick([b"chunked, chunked", b"gzip, chunked", b"chunked, gzip", b"xchunked", b"chunked\x00", b"identity", b"CHUNKED", b"chunked;q=1", b"", b"\tchunked"])
    return simple(post_body(c, b'10\r\n{"content":"te"}\r\n0\r\n\r\n', [b"Transfer-Encoding: " + te, b"Connection: close"]))


@probe(F, "bad chunk size")
def _(c):
    size = c.pick([b"zz", b"-1", b"ffffffffffffffffffff", b"10000000000000000", b"10;\x00", b"10 ;ext", b"0x10", b"", b" 10", b"10" + b";e" * 5000, b"fffffffffff"])
    body = size + b'\r\n{"content":"te"}\r\n0\r\n\r\n'
    return simple(post_body(c, body, [b"Transfer-Encoding: chunked", b"Connection: close"]), deadline=BODY_TIMEOUT + 3)


@probe(F, "truncated or malformed chunks")
def _(c):
    body = c.pick([
        b'10\r\n{"content":"te"}',  # no terminating chunk: waits, then 408
        b'10\r\n{"content":"te"}\r\n',  # no last chunk
        b'10\r\n{"content":"t"}\r\n0\r\n\r\n',  # data shorter than the size
        b'5\r\n{"content":"te"}\r\n0\r\n\r\n',  # data longer than the size
        b'10\r\n{"content":"te"}0\r\n\r\n',  # missing CRLF after the data
        b'10\r\n{"content":"te"}\r\n0\r\nX-Trailer: 1\r\n\r\n',  # a trailer
        b'10\r\n{"content":"te"}\r\n0\r\n',  # no final CRLF
        b'10\n{"content":"te"}\n0\n\n',  # bare LFs
    ])
    return simple(post_body(c, body, [b"Transfer-Encoding: chunked"]), deadline=BODY_TIMEOUT + 3)


@probe(F, "malformed header lines")
def _(c):
    h = c.pick([
        b"NoColonHere", b"X Space: 1", b"X-A : 1", b": empty-name", b"X-A:\r\n continued", b" leading: space", b"X-\xff: 1",
        b"Host: a\r\nHost: b", b"X-A: " + b"\xff\xfe" * 10, b"Authorization: Bearer \xff\xfe", b"Authorization: Bearer", b"Authorization: bearer " + c.customer.encode(),
        b"Authorization: Basic Zm9vOmJhcg==", b"Authorization: " + auth(c.customer).encode(), b"Expect: 100-continue", b"Expect: teapot",
        b"Connection: Upgrade\r\nUpgrade: h2c", b"Content-Type: \x00", b"Accept: " + b"*/*," * 2000, b"Idempotency-Key: \xff" * 1,
    ])
    return simple(b"GET /api/v1/tickets HTTP/1.1\r\nHost: x\r\n" + h + b"\r\nConnection: close\r\n\r\n")


@probe(F, "missing Host, or many")
def _(c):
    raw = c.pick([
        b"GET /healthz HTTP/1.1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: " + b"h" * 20000 + b"\r\n\r\n", b"GET http://other/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ])
    return simple(raw)


@probe(F, "two Authorization headers")
def _(c):
    return simple(req("GET", f"/api/v1/tickets/{c.ticket}", [auth(c.forged["wrong signature"]), auth(c.customer)], close=True))


# --- oversized ------------------------------------------------------------------------------

F = "oversized"


@probe(F, "101 to 2000 header fields")
def _(c):
    n = c.pick([101, 150, 2000])
    return simple(req("GET", "/healthz", [f"X-H{i}: {i}" for i in range(n)], close=True))


@probe(F, "one header of 500 KB")
def _(c):
    return simple(req("GET", "/healthz", ["X-Big: " + "b" * 500_000], close=True))


@probe(F, "one header of 1 or 2 MB")
def _(c):
    size = c.pick([1_000_000, 2_000_000])
    return simple(req("GET", "/healthz", ["X-Big: " + "b" * size], close=True))


@probe(F, "header section just under the limit")
def _(c):
    return simple(req("GET", "/healthz", [f"X-H{i}: " + "v" * 3000 for i in range(90)], close=True))


@probe(F, "body over 64 KiB")
def _(c):
    size = c.pick([65537, 1 << 20, 8 << 20])
    body = b'{"content":"' + b"x" * size + b'"}'
    return simple(post_body(c, body, [b"Content-Length: " + str(len(body)).encode()]))


@probe(F, "chunked body over 64 KiB")
def _(c):
    chunk = b"x" * 32768
    body = b'c\r\n{"content":"\r\n' + (b"8000\r\n" + chunk + b"\r\n") * c.pick([3, 64]) + b'2\r\n"}\r\n0\r\n\r\n'
    return simple(post_body(c, body, [b"Transfer-Encoding: chunked"]))


@probe(F, "huge Content-Length announced, body sent slowly")
def _(c):
    head = post_body(c, b"", [b"Content-Length: 10000000000"])
    return simple([head, b'{"content":"', ("sleep", 0.5), b"x" * 1000], deadline=BODY_TIMEOUT + 3)


# --- bodies on real endpoints ---------------------------------------------------------------

F = "bodies and tokens"

ENDPOINTS = [
    ("POST", "/api/v1/tickets"),
    ("POST", "/api/v1/tickets/{t}/messages"),
    ("PATCH", "/api/v1/tickets/{t}"),
    ("PATCH", "/api/v1/tickets/{t}/messages/{m}"),
    ("POST", "/api/v1/tickets/{t}/close"),
    ("POST", "/api/v1/tickets/{t}/feedback"),
    ("PUT", "/api/v1/replies/fz"),
    ("PUT", "/api/v1/blocks/fz-nobody"),
    ("POST", "/api/v1/tickets/{t}/claim"),
]

BAD_BODIES = [
    b'{"topic":"\xff\xfe","description":"x","content":"\xc0\xaf"}', b'{"content":"\xed\xa0\x80"}', b"\xef\xbb\xbf{\"content\":\"bom\"}",
    b'{"content":', b"{", b"[", b"null", b"true", b"12", b'"str"', b"[]", b"{}", b'{"content":"a"} trailing', b'{"content":"a"}{"content":"b"}',
    b'{"content":"a","content":"b"}', b'{"content":1e999}', b'{"content":' + b"9" * 5000 + b"}", b"[" * 20000 + b"]" * 20000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000, b'{"content":"\\ud800"}', b'{"content":"\\u0000"}', b'{"content":"a\x00b"}', b"\x00" * 100,
    b'{"topic":null,"description":[]}', b'{"topic":"x","description":"y","extra":' + b"1" * 100 + b"}", b'{"rating":-1,"comment":{}}',
    b'{"tags":[' + b'"t",' * 500 + b'"t"]}', b'{"content":"x","attachments":["javascript:alert(1)","http://[::1]:x/","file:///etc/passwd"]}',
    b"", b" ", b"{'content':'single'}", b"content=form&encoded=1",
]


@probe(F, "invalid UTF-8 / bad JSON, valid token")
def _(c):
    method, path = c.pick(ENDPOINTS)
    path = path.format(t=c.ticket, m=c.message)
    body = c.pick(BAD_BODIES)
    ct = c.pick([JSON, "Content-Type: text/plain", "Content-Type: application/json; charset=latin1", "Content-Type: \xff"])
    return simple(req(method, path, [auth(c.pick([c.customer, c.admin, c.agent])), ct], body, close=True))


@probe(F, "bad JSON, forged token")
def _(c):
    method, path = c.pick(ENDPOINTS)
    path = path.format(t=c.ticket, m=c.message)
    kind = c.pick(sorted(c.forged))
    return simple(req(method, path, [auth(c.forged[kind]), JSON], c.pick(BAD_BODIES), close=True))


@probe(F, "valid JSON, forged token")
def _(c):
    method, path = c.pick(ENDPOINTS + [("GET", "/api/v1/tickets"), ("GET", "/api/v1/events"), ("GET", "/api/v1/reports"), ("GET", "/api/v1/search?q=x")])
    path = path.format(t=c.ticket, m=c.message)
    kind = c.pick(sorted(c.forged))
    return simple(req(method, path, [auth(c.forged[kind]), JSON], b'{"content":"hi","topic":"t","description":"d"}', close=True))


@probe(F, "GET with a body")
def _(c):
    return simple(req("GET", f"/api/v1/tickets/{c.ticket}", [auth(c.customer), JSON], c.pick(BAD_BODIES) or b"x", close=True))


# --- pipelining and request smuggling ---------------------------------------------------------

F = "pipelining and smuggling"

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@probe(F, "pipelined valid requests")
def _(c):
    n = c.pick([2, 3, 10, 50])
    one = [HEALTH, req("GET", f"/api/v1/tickets/{c.ticket}", [auth(c.customer)]), req("POST", f"/api/v1/tickets/{c.ticket}/messages", [auth(c.customer), JSON], b'{"content":"pipelined"}')]
    reqs = [c.pick(one) for _ in range(n)]
    return simple(b"".join(reqs), expect=n, stop_after=n)


@probe(F, "pipelined, one malformed in the middle")
def _(c):
    bad = c.pick([b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n", post_body(c, b'{"content":"x"}', [b"Content-Length: 15", b"Content-Length: 16"])])
    return simple(HEALTH + bad + HEALTH, expect=3, allow_5xx={505})


@probe(F, "pipelined after Connection: close")
def _(c):
    # The second request must not be served: the first said the connection ends with it.
    return simple(req("GET", "/healthz", close=True) + HEALTH, expect=1, max_responses=1, stop_after=0)


def hidden():
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@probe(F, "CL.TE: Content-Length and Transfer-Encoding")
def _(c):
    # A front end reading Content-Length would pass the hidden request as body; we must never
    # answer it as a request of its own (answer with 400, or read chunked and close).
    smuggled = hidden()
    body = b"0\r\n\r\n" + smuggled
    head = f"POST /api/v1/tickets/{c.ticket}/messages HTTP/1.1\r\nHost: x\r\n{auth(c.customer)}\r\n{JSON}\r\n".encode()
    te = c.pick([b"Transfer-Encoding: chunked", b"Transfer-Encoding:  chunked", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"])
    raw = head + b"Content-Length: " + str(len(body)).encode() + b"\r\n" + te + b"\r\n\r\n" + body
    return simple(raw, expect=1, max_responses=1, no_healthz=True, stop_after=0)


@probe(F, "TE.CL: Transfer-Encoding and a short Content-Length")
def _(c):
    smuggled = hidden()
    chunk = b'{"content":"x"}'
    body = format(len(chunk), "x").encode() + b"\r\n" + chunk + b"\r\n0\r\n\r\n"
    head = f"POST /api/v1/tickets/{c.ticket}/messages HTTP/1.1\r\nHost: x\r\n{auth(c.customer)}\r\n{JSON}\r\n".encode()
    raw = head + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + body + smuggled
    return simple(raw, expect=1, max_responses=1, no_healthz=True, stop_after=0)


@probe(F, "obfuscated Transfer-Encoding")
def _(c):
    te = c.pick([b"Transfer-Encoding: xchunked", b"Transfer-Encoding : chunked", b"Transfer-Encoding:\x0bchunked", b" Transfer-Encoding: chunked", b"X: y\r\n Transfer-Encoding: chunked", b"Transfer-encoding: cHuNkEd", b"Transfer_Encoding: chunked"])
    body = b"0\r\n\r\n" + hidden()
    head = f"POST /api/v1/tickets/{c.ticket}/messages HTTP/1.1\r\nHost: x\r\n{auth(c.customer)}\r\n{JSON}\r\n".encode()
    raw = head + b"Content-Length: " + str(len(body)).encode() + b"\r\n" + te + b"\r\n\r\n" + body
    return simple(raw, expect=1, max_responses=1, no_healthz=True, stop_after=0)


@probe(F, "HTTP/1.0 keep-alive pipelining")
def _(c):
    one = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    return simple(one + one + b"GET /healthz HTTP/1.0\r\n\r\n", expect=3)


@probe(F, "HTTP/1.0 with Transfer-Encoding")
def _(c):
    body = b"0\r\n\r\n" + hidden()
    head = f"POST /api/v1/tickets/{c.ticket}/messages HTTP/1.0\r\nHost: x\r\n{auth(c.customer)}\r\n{JSON}\r\nConnection: keep-alive\r\n".encode()
    raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + body
    return simple(raw, expect=1, max_responses=1, no_healthz=True, stop_after=0)


# --- slow and half-sent requests (bounded) ------------------------------------------------------

F = "slow and half-sent"


@probe(F, "connect, send nothing")
def _(c):
    return simple([], expect=0, deadline=HEADER_TIMEOUT + 3)


@probe(F, "header section never finished")
def _(c):
    part = c.pick([b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GET /heal", b"POST /api/v1/tickets HTTP/1.1\r\nContent-Length: 10\r\n"])
    return simple(part, expect=0, deadline=HEADER_TIMEOUT + 3)


@probe(F, "slowloris headers")
def _(c):
    # One byte every 0.4 s: the header time-out counts from the first byte, not per byte.
    steps = []
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 40:
        steps += [bytes([b]), ("sleep", 0.4)]
    return simple(steps, expect=0, deadline=HEADER_TIMEOUT + 3)


@probe(F, "body never finished")
def _(c):
    body = c.pick([b'{"content":"half', b'10\r\n{"content":"t'])
    te = b"Transfer-Encoding: chunked" if body.startswith(b"10") else b"Content-Length: 100"
    return simple(post_body(c, body, [te]), deadline=BODY_TIMEOUT + 3)


@probe(F, "slow but complete body")
def _(c):
    body = b'{"content":"slow"}'
    head = post_body(c, b"", [b"Content-Length: " + str(len(body)).encode()])
    steps = [head]
    for i in range(0, len(body), 3):
        steps += [body[i : i + 3], ("sleep", 0.3)]
    return simple(steps)


@probe(F, "idle after a complete request")
def _(c):
    # Answered at once; the keep-alive connection then stays idle and is closed later.
    return simple(HEALTH, stop_after=1)


# --- random mutations of valid requests -----------------------------------------------------------

F = "mutations"


def valid_requests(c):
    return [
        HEALTH,
        req("GET", f"/api/v1/tickets/{c.ticket}", [auth(c.customer)]),
        req("GET", "/api/v1/tickets?limit=5&status=open", [auth(c.admin)]),
        req("POST", f"/api/v1/tickets/{c.ticket}/messages", [auth(c.customer), JSON, "Idempotency-Key: k-1"], b'{"content":"mutant"}'),
        req("PATCH", f"/api/v1/tickets/{c.ticket}", [auth(c.admin), JSON], b'{"tags":["a","b"]}'),
        req("POST", "/api/v1/tickets", [auth(c.customer), JSON], b'{"topic":"m","description":"d"}'),
        req("GET", f"/api/v1/tickets/{c.ticket}/messages?limit=2&order=desc", [auth(c.customer)]),
        req("POST", f"/api/v1/tickets/{c.ticket}/messages", [auth(c.customer), JSON, "Transfer-Encoding: chunked"], b'8\r\n{"conten\r\n9\r\nt":"ch"}\r\n0\r\n\r\n', length=False),
        req("GET", "/api/v1/events?after=0&limit=3", [auth(c.admin)]),
        req("GET", "/api/v1/search?q=hello", [auth(c.agent)]),
        req("PUT", "/api/v1/replies/m", [auth(c.admin), JSON], b'{"content":"saved"}'),
    ]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(9)
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[i] = rng.randrange(256)
        elif op == 2:
            data.insert(i, rng.randrange(256))
        elif op == 3:
            del data[i]
        elif op == 4:
            j = min(len(data), i + rng.randint(1, 40))
            data[i:i] = data[i:j] * rng.randint(1, 50)
        elif op == 5:
            data[i:i] = rng.choice([b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"\r\n\r\n", b"%", b"\xff"])
        elif op == 6:
            digits = [k for k, ch in enumerate(data) if 48 <= ch <= 57]
            if digits:
                k = rng.choice(digits)
                data[k : k + 1] = rng.choice([b"99999999999999999999", b"-1", b"0", b"4294967296"])
        elif op == 7:
            del data[i:]
        else:
            j = rng.randrange(len(data))
            data[i], data[j] = data[j], data[i]
    return bytes(data)


@probe(F, "random byte mutations of valid requests")
def _(c):
    # The mutant may be complete, cut short (then the time-outs close it) or several requests.
    return simple(mutate(c.rng, c.pick(valid_requests(c))), stop_after=1, deadline=WAIT + 2)


# ---------------------------------------------------------------------------------------------
# Judging one probe


def envelope_ok(status, headers, body):
    """An error with a body must be the JSON envelope {"error", "message"}."""
    if status < 400 or not body:
        return True
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str)


def judge(spec, r):
    """The rules a probe's result broke (empty when none)."""
    broken = []
    responses = r["responses"]
    statuses = [st for st, _, _ in responses]
    if r["garbled"] is not None:
        broken.append(f"an answer that is not HTTP: {r['garbled'][:40]!r}")
    if r["outcome"] == "silent":
        broken.append(f"neither answered nor closed within {WAIT:.0f} s of the last byte")
    for st, h, body in responses:
        if st >= 500 and st not in spec.get("allow_5xx", ()):
            broken.append(f"answered {st}: {body[:120]!r}")
        if not envelope_ok(st, h, body):
            broken.append(f"a {st} whose body is not the JSON envelope: {body[:80]!r}")
    expect = spec.get("expect", 1)
    if expect and len(responses) < expect and not r["closed"] and r["outcome"] != "silent":
        broken.append(f"{len(responses)} of {expect} complete requests answered, the connection still open")
    if expect and len(responses) < expect and r["closed"]:
        # Fewer answers is fine when the server closed after refusing something.
        if not any(st >= 400 for st in statuses) and not (responses == [] and r["outcome"] == "closed"):
            broken.append(f"{len(responses)} of {expect} requests answered before the close, none refused")
    if spec.get("max_responses") is not None and len(responses) > spec["max_responses"]:
        broken.append(f"{len(responses)} answers to {spec['max_responses']} request(s): a request hidden in a body was served ({statuses})")
    if spec.get("no_healthz") and any(b'"status":"ok"' in body for _, _, body in responses):
        broken.append("the /healthz hidden in a body was answered")
    if spec.get("deadline") and r["outcome"] == "closed" and r["secs"] > spec["deadline"]:
        broken.append(f"closed after {r['secs']:.1f} s, beyond {spec['deadline']} s")
    return broken


# ---------------------------------------------------------------------------------------------
# The control client


class Control(threading.Thread):
    """An authorized customer posting to its own ticket every 100 ms over one keep-alive
    connection (a new one after an error), timing each answer."""

    def __init__(self, server, token):
        super().__init__(daemon=True)
        self.server = server
        self.token = token
        self.phase = "before"
        self.samples = []
        self.failures = 0
        self.running = True
        status, ticket = server.request("POST", "/api/v1/tickets", token, {"topic": "control", "description": "latency"})
        if status != 200:
            raise SystemExit(f"fuzz-http: the control ticket could not be opened ({status})")
        self.path = f"/api/v1/tickets/{ticket['id']}/messages"

    def run(self):
        conn = None
        n = 0
        while self.running:
            n += 1
            body = json.dumps({"content": f"ctl {n}"})
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            t0 = time.monotonic()
            phase = self.phase
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.server.port, timeout=5)
                conn.request("POST", self.path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise OSError(f"status {r.status}")
                self.samples.append((phase, (time.monotonic() - t0) * 1000))
            except (OSError, http.client.HTTPException):
                self.failures += 1
                self.samples.append((phase, 5000.0))
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.1)
        if conn is not None:
            conn.close()

    def p99(self, phase):
        xs = sorted(ms for p, ms in self.samples if p == phase)
        if not xs:
            return None
        return round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 1)

    def count(self, phase):
        return sum(1 for p, _ in self.samples if p == phase)


# ---------------------------------------------------------------------------------------------
# The run


def self_test():
    """Plants each fault the judge must catch in a made-up result (no server), and checks that
    a clean result passes: a fuzzer whose rules cannot fail proves nothing. Also checks the
    response reader on chunked, HEAD and pipelined answers."""
    env = b'{"error":"BAD_REQUEST","message":"m"}'

    def result(outcome="answered", responses=(), closed=True, secs=0.1, garbled=None):
        return {"outcome": outcome, "responses": list(responses), "closed": closed, "secs": secs, "garbled": garbled, "partial": False, "detail": ""}

    planted = {
        "silence": ({}, result("silent", closed=False)),
        "a 500": ({}, result(responses=[(500, {}, env)])),
        "an error outside the envelope": ({}, result(responses=[(400, {}, b"oops")])),
        "bytes that are not HTTP": ({}, result("closed", garbled=b"SSH-2.0")),
        "a request hidden in a body answered": (
            {"max_responses": 1, "no_healthz": True},
            result(responses=[(200, {}, b"{}"), (200, {}, b'{"status":"ok"}')]),
        ),
        "pipelined requests left unanswered": ({"expect": 3}, result(responses=[(200, {}, b"{}")], closed=False)),
        "a close long past the time-out": ({"deadline": 8}, result("closed", secs=20)),
    }
    failed = [name for name, (spec, r) in planted.items() if not judge(spec, r)]
    clean = judge({"expect": 2}, result(responses=[(200, {}, b"{}"), (400, {}, env)]))
    if clean:
        failed.append(f"a clean result was judged broken: {clean}")
    wire = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
    )
    got, partial = parse_responses(wire)
    if [st for st, _, _ in got] != [200, 400] or got[0][2] != b"{}" or partial:
        failed.append(f"pipelined answers read as {got}")
    got, _ = parse_responses(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n", head=True)
    if len(got) != 1:
        failed.append("a HEAD answer was not complete without its body")
    try:
        parse_responses(b"SSH-2.0-OpenSSH\r\n\r\n")
        failed.append("garbage was read as an answer")
    except Garbled:
        pass
    for f in failed:
        print(f"  SELF-TEST: not caught: {f}")
    print(f"{'PASS' if not failed else 'FAIL'} fuzz-http self-test: {len(planted)} planted faults, 4 reader checks")
    return not failed


def main():
    a = arguments()
    if a.self_test:
        sys.exit(0 if self_test() else 1)
    if not a.bin or not a.json:
        sys.exit("fuzz-http: --bin and --json are required")
    seed = a.seed if a.seed is not None else secrets.randbelow(10**9)
    work = tempfile.mkdtemp(prefix="ticketd-fuzz-http.")
    server = Server(a.bin, work)
    try:
        ok = run(a, seed, server, work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


def run(a, seed, server, work):
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()
    setup = Ctx(server, random.Random(seed))
    control = Control(server, Tokens(server.secret).user("fz-control", "CUSTOMER"))
    # The first requests warm the server up (caches, the first pages of SQLite): not counted.
    control.phase = "warm-up"
    control.start()
    time.sleep(2)
    control.phase = "before"
    time.sleep(a.before)
    control.phase = "during"

    lock = threading.Lock()
    tally = {}
    broken = []
    health_failures = []
    fuzz_until = time.monotonic() + a.seconds
    hard_stop = fuzz_until + 120
    counter = [0]
    names = [p.name for p in PROBES]
    # Mutations are drawn about a fifth of the time: they are the open-ended part.
    weights = [len(PROBES) // 4 if p.family == "mutations" else 1 for p in PROBES]

    def one(p, ctx):
        spec = p.make(ctx)
        try:
            r = exchange(ctx.port, spec["steps"], spec.get("expect", 1), stop_after=spec.get("stop_after"), head=spec.get("head", False))
        except OSError as e:
            # Could not even connect: the listener is gone or full.
            r = {"outcome": "refused", "responses": [], "garbled": None, "closed": True, "secs": 0, "detail": str(e), "partial": False}
        bad = judge(spec, r) if r["outcome"] != "refused" else [f"connection refused: {r['detail']}"]
        with lock:
            t = tally.setdefault(p.name, {"family": p.family, "tried": 0, "answered": 0, "closed": 0, "silent": 0, "refused": 0, "closed_after_answer": 0, "statuses": {}, "sent": {}, "broken": 0, "examples": {}, "max_secs": 0.0})
            t["tried"] += 1
            if r["outcome"] == "answered" and r["closed"]:
                t["closed_after_answer"] += 1
            t[r["outcome"]] += 1
            t["max_secs"] = max(t["max_secs"], round(r["secs"], 2))
            sent = next((x for x in spec["steps"] if isinstance(x, bytes)), b"")
            for st, _, _ in r["responses"]:
                t["statuses"][str(st)] = t["statuses"].get(str(st), 0) + 1
                # What was sent, for the first answer of each status: to see why.
                t["sent"].setdefault(str(st), sent[:160].decode("latin-1"))
            t["examples"].setdefault(r["outcome"], r["detail"][:80])
            if bad:
                t["broken"] += 1
                for b in bad:
                    if len(broken) < 200:
                        broken.append(f"{p.name}: {b}")
            counter[0] += 1
            n = counter[0]
        if n % 200 == 0 and not server.healthy():
            with lock:
                health_failures.append(n)

    def lane(i):
        ctx = Ctx.__new__(Ctx)
        ctx.__dict__.update(setup.__dict__)
        ctx.rng = random.Random(seed * 1000 + i)
        # Every probe once, spread over the lanes, then random ones.
        for k in range(i, len(PROBES), a.concurrency):
            if time.monotonic() > hard_stop:
                return
            one(PROBES[k], ctx)
        while time.monotonic() < fuzz_until and server.alive():
            one(ctx.rng.choices(PROBES, weights)[0], ctx)

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, hard_stop - time.monotonic()) + 1)
    fuzz_secs = time.monotonic() - (fuzz_until - a.seconds)
    control.phase = "after"
    time.sleep(a.after)
    control.running = False
    control.join(10)

    before, during, after = control.p99("before"), control.p99("during"), control.p99("after")
    limit = round(max(3 * (before or 0), (before or 0) + 250))
    if not server.alive():
        broken.append(f"the server exited ({server.proc.returncode})")
    if not server.healthy():
        broken.append("/healthz fails after the fuzzing")
    if health_failures:
        broken.append(f"/healthz failed during the fuzzing, after probe(s) {health_failures[:5]}")
    if during is not None and during > limit:
        broken.append(f"control p99 during the fuzzing {during} ms > {limit} ms")
    if after is not None and after > limit:
        broken.append(f"control p99 after the fuzzing {after} ms > {limit} ms")
    if any(t.is_alive() for t in threads):
        broken.append("a lane was still running at the hard stop")
    panics = errors = 0
    with open(server.log_path, errors="replace") as f:
        for line in f:
            panics += "panicked" in line
            errors += '"level":"ERROR"' in line or " ERROR " in line
    if panics:
        broken.append(f"{panics} panics in the server's log")
    probes = sum(t["tried"] for t in tally.values())
    families = {}
    for t in tally.values():
        f = families.setdefault(t["family"], {"tried": 0, "answered": 0, "closed": 0, "silent": 0, "broken": 0})
        for k in f:
            f[k] += t[k]
    result = {
        "started_at": started_at,
        "seconds": a.seconds,
        "fuzz_secs": round(fuzz_secs, 1),
        "wall_secs": round(time.monotonic() - t_start, 1),
        "concurrency": a.concurrency,
        "seed": seed,
        "probes": probes,
        "probe_kinds": len(PROBES),
        "timeouts": {"header_secs": HEADER_TIMEOUT, "body_secs": BODY_TIMEOUT, "wait_secs": WAIT},
        "control": {
            "p99_before_ms": before, "p99_during_ms": during, "p99_after_ms": after, "limit_ms": limit,
            "samples": len(control.samples), "samples_during": control.count("during"), "failures": control.failures,
        },
        "families": families,
        "tally": {p.name: tally[p.name] for p in PROBES if p.name in tally},
        "server_error_lines": errors,
        "server_panics": panics,
        "broken": list(dict.fromkeys(broken)),
        "ok": not broken,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)

    width = max(len(n) for n in names)
    print(f"  {'probe':<{width}}  {'tried':>7} {'answered':>8} {'closed':>7} {'silent':>6}  statuses")
    family = None
    for p in PROBES:
        t = tally.get(p.name)
        if not t:
            continue
        if p.family != family:
            family = p.family
            print(f"  -- {family}")
        sts = " ".join(f"{k}x{v}" for k, v in sorted(t["statuses"].items()))
        print(f"  {p.name:<{width}}  {t['tried']:>7} {t['answered']:>8} {t['closed']:>7} {t['silent']:>6}  {sts[:60]}")
    c = result["control"]
    print(f"  control p99: before {before} ms, during {during} ms, after {after} ms (limit {limit} ms), {c['samples']} samples, {c['failures']} failures")
    print(f"  server log: {errors} ERROR lines, {panics} panics")
    for b in result["broken"][:40]:
        print(f"  BROKEN {b}")
    print(f"{'PASS' if result['ok'] else 'FAIL'} fuzz-http: {probes:,} probes of {len(PROBES)} kinds in {fuzz_secs:.0f} s (seed {seed})")
    return result["ok"]


if __name__ == "__main__":
    main()
