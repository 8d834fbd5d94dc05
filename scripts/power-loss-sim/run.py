"""Power-loss cycles for scripts/power-loss (see that script and docs/adr/0028-torture-harness.md).

    python3 run.py --bin PATH --shim PATH --out DIR [--cycles N] [--duration SECS]
                   [--sync FULL|NORMAL] [--mode drop|prefix|all] [--seed N] [--expect-loss]

Each cycle: copy the data directory (the durable base), start ticketd with the shim preloaded,
let writers open tickets and post messages (each with an Idempotency-Key) and log what was
acknowledged, SIGKILL the server at a random instant, rebuild the directory as a power cut
would leave it (replay.py), run `ticketd verify` on it, start ticketd on it without the shim and
look for every acknowledged ticket and message. Stops it gracefully and goes on from there.
Writes DIR/result.json; exits 1 when an acknowledged write is missing (unless --expect-loss)
or verify fails.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "power-loss-" + uuid.uuid4().hex


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(uid, role):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"id": uid, "username": uid, "email": f"{uid}@example.com", "role": role}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, method, path, tok, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"authorization": f"Bearer {tok}"}
    if body is not None:
        h["content-type"] = "application/json"
    h.update(headers or {})
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, (json.loads(data) if data else None), r.getheader("link")


class Server:
    def __init__(self, args, data, port, shim_log=None):
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DATA_DIR": data,
            "WEB_SERVER_HOST": "127.0.0.1",
            "WEB_SERVER_PORT": str(port),
            "JWT_SECRET_KEY": SECRET,
            "RATE_LIMITS": "off",
            "SQLITE_SYNCHRONOUS": args.sync,
            "RUST_LOG": "warn",
        }
        if shim_log:
            env.update({"LD_PRELOAD": args.shim, "PL_DIR": data, "PL_LOG": shim_log})
        self.port = port
        self.log = open(os.path.join(args.out, "server.log"), "ab")
        self.proc = subprocess.Popen([args.bin], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"ticketd exited while starting; see {args.out}/server.log")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("ticketd not ready within 60 s")
            time.sleep(0.05)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Writer(threading.Thread):
    """Opens a ticket, then posts messages to it until the server goes away."""

    def __init__(self, index, port, acked, lock):
        super().__init__(daemon=True)
        self.index, self.port, self.acked, self.lock = index, port, acked, lock
        self.user = f"w{index}-{uuid.uuid4().hex[:6]}"
        self.tok = token(self.user, "CUSTOMER")

    def run(self):
        try:
            key = str(uuid.uuid4())
            s, t, _ = request(self.port, "POST", "/api/v1/tickets", self.tok,
                              {"topic": f"power {self.index}", "description": "loss"}, {"Idempotency-Key": key})
            if s != 200:
                return
            with self.lock:
                self.acked.append({"kind": "ticket", "ticket": t["id"], "user": self.user, "tok": self.tok})
            while True:
                key = str(uuid.uuid4())
                s, m, _ = request(self.port, "POST", f"/api/v1/tickets/{t['id']}/messages", self.tok,
                                  {"content": key}, {"Idempotency-Key": key})
                if s != 200:
                    return
                with self.lock:
                    self.acked.append({"kind": "message", "ticket": t["id"], "message": m["id"], "tok": self.tok})
        except (OSError, http.client.HTTPException):
            return  # the server was killed


def messages_of(port, ticket, tok):
    out = []
    path = f"/api/v1/tickets/{ticket}/messages?limit=200"
    while path:
        s, body, link = request(port, "GET", path, tok)
        if s != 200:
            return None
        out.extend(m["id"] for m in body)
        path = None
        if link and 'rel="next"' in link:
            path = link.split("<", 1)[1].split(">", 1)[0]
            if "://" in path:
                path = "/" + path.split("://", 1)[1].split("/", 1)[1]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--sync", default="FULL")
    ap.add_argument("--mode", default="drop")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--expect-loss", action="store_true")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    data = os.path.join(args.out, "data")
    os.makedirs(data, exist_ok=True)
    result = {"sync": args.sync, "mode": args.mode, "seed": args.seed, "cycles": [], "ok": True}
    started = time.time()
    for c in range(1, args.cycles + 1):
        base = os.path.join(args.out, "base")
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(data, base)
        shim_log = os.path.join(args.out, "shim.log")
        if os.path.exists(shim_log):
            os.remove(shim_log)
        port = free_port()
        server = Server(args, data, port, shim_log)
        acked, lock = [], threading.Lock()
        writers = [Writer(i, port, acked, lock) for i in range(args.writers)]
        for w in writers:
            w.start()
        time.sleep(0.3 + rng.random() * args.duration)
        server.kill9()
        for w in writers:
            w.join(timeout=15)
        with lock:
            acked = list(acked)
        # The power cut: the directory as the disk holds it.
        after = os.path.join(args.out, "after")
        shutil.rmtree(after, ignore_errors=True)
        os.makedirs(after)
        replay = subprocess.run([sys.executable, os.path.join(HERE, "replay.py"), base, shim_log, after, args.mode,
                                 str(rng.randrange(1 << 30))],
                                env={**os.environ, "PL_DIR": data}, capture_output=True, text=True, check=True)
        summary = json.loads(replay.stdout)
        shutil.rmtree(data)
        shutil.move(after, data)
        verify = subprocess.run([args.bin, "verify"], capture_output=True, text=True,
                                env={"PATH": os.environ.get("PATH", ""), "DATA_DIR": data, "JWT_SECRET_KEY": SECRET})
        port = free_port()
        server = Server(args, data, port)
        lost = []
        tickets = {a["ticket"]: a for a in acked if a["kind"] == "ticket"}
        present = {}
        for t, a in tickets.items():
            ids = messages_of(port, t, a["tok"])
            if ids is None:
                lost.append(f"ticket {t}")
                continue
            if len(ids) != len(set(ids)):
                lost.append(f"ticket {t}: a message twice")
            present.update({i: t for i in ids})
        for a in acked:
            if a["kind"] == "message" and a["ticket"] in tickets and a["message"] not in present:
                lost.append(f"message {a['message']}")
        server.stop()
        unsynced = sum(f["unsynced_changes"] - f["kept"] for f in summary["files"].values())
        cycle = {
            "cycle": c,
            "acked": len(acked),
            "lost": len(lost),
            "lost_examples": lost[:3],
            "verify": verify.returncode == 0,
            "verify_output": (verify.stdout + verify.stderr)[-400:] if verify.returncode else "",
            "writes_logged": summary["writes"],
            "fsyncs": summary["syncs"],
            "dirsyncs": summary["dirsyncs"],
            "unsynced_changes_dropped": unsynced,
            "unsynced_entries_dropped": summary["unsynced_entries_dropped"],
        }
        print(json.dumps(cycle), flush=True)
        result["cycles"].append(cycle)
        if not cycle["verify"] or (lost and not args.expect_loss):
            result["ok"] = False
            break
    result["wall_secs"] = round(time.time() - started, 1)
    result["acked"] = sum(c["acked"] for c in result["cycles"])
    result["lost"] = sum(c["lost"] for c in result["cycles"])
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    verdict = "PASS" if result["ok"] else "FAIL"
    print(f"{verdict} power-loss SQLITE_SYNCHRONOUS={args.sync} mode={args.mode}: {len(result['cycles'])} cycles, "
          f"{result['acked']} acknowledged, {result['lost']} lost, {result['wall_secs']} s")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
