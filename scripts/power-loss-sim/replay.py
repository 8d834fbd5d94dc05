"""Rebuilds a data directory as a disk would show it after a power cut (scripts/power-loss).

    python3 replay.py BASE LOG OUT MODE SEED

BASE is a copy of the directory taken before the process started (everything in it durable),
LOG the shim's record of what the process changed and synced, OUT an empty directory to build.
MODE: `drop` keeps only what a barrier covered (fsync/fdatasync of the file for its content, of
its directory for creations, unlinks and renames); `prefix` keeps in addition a random prefix of
each file's unsynced changes and of each directory's unsynced entries; `all` keeps everything
(what a kill without power loss leaves). Prints a JSON summary on stdout.
"""

import json
import os
import random
import struct
import sys


class File:
    def __init__(self, content=b""):
        self.durable = bytearray(content)
        self.pending = []  # ("w", offset, data) | ("t", size)


def apply(image, op):
    if op[0] == "w":
        _, off, data = op
        if len(image) < off:
            image.extend(b"\0" * (off - len(image)))
        image[off:off + len(data)] = data
    else:
        size = op[1]
        if len(image) > size:
            del image[size:]
        else:
            image.extend(b"\0" * (size - len(image)))


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        if i + 5 > len(data):
            break
        op = data[i]
        (n,) = struct.unpack_from("<I", data, i + 1)
        p = data[i + 5:i + 5 + n]
        a, b = struct.unpack_from("<QQ", data, i + 5 + n)
        i += 5 + n + 16
        payload = b""
        if op == 2:
            payload = data[i:i + b]
            i += b
        yield op, p.decode(), a, b, payload


def main():
    base, log, out, mode, seed = sys.argv[1:6]
    rng = random.Random(int(seed))
    base = os.path.abspath(base)
    cur = {}  # live namespace: absolute path -> File
    dur = {}  # durable namespace
    dir_pending = {}  # directory -> [ops]
    # The shim logs paths under the live data directory; the base copy stands in for it.
    live = os.environ.get("PL_DIR", base)
    for root, _, files in os.walk(base):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                obj = File(f.read())
            p = os.path.join(live, os.path.relpath(full, base))
            cur[p] = obj
            dur[p] = obj
    counts = {"records": 0, "writes": 0, "syncs": 0, "dirsyncs": 0}
    for op, p, a, b, payload in records(log):
        counts["records"] += 1
        d = os.path.dirname(p)
        if op == 1:
            obj = File()
            cur[p] = obj
            dir_pending.setdefault(d, []).append(("link", p, obj))
        elif op == 2:
            counts["writes"] += 1
            cur.setdefault(p, File()).pending.append(("w", a, payload))
        elif op == 3:
            cur.setdefault(p, File()).pending.append(("t", a))
        elif op == 4:
            counts["syncs"] += 1
            obj = cur.get(p)
            if obj:
                for x in obj.pending:
                    apply(obj.durable, x)
                obj.pending = []
        elif op == 5:
            counts["dirsyncs"] += 1
            for x in dir_pending.pop(p, []):
                namespace_apply(dur, x)
        elif op == 6:
            cur.pop(p, None)
            dir_pending.setdefault(d, []).append(("unlink", p))
        elif op == 7:
            old, new = p.split("\0")
            obj = cur.pop(old, None)
            if obj:
                cur[new] = obj
                dir_pending.setdefault(os.path.dirname(new), []).append(("rename", old, new, obj))
    lost_entries = 0
    if mode == "all":
        names = dict(cur)
    else:
        names = dict(dur)
        for ops in dir_pending.values():
            keep = len(ops) if mode == "all" else (rng.randint(0, len(ops)) if mode == "prefix" else 0)
            for x in ops[:keep]:
                namespace_apply(names, x)
            lost_entries += len(ops) - keep
    summary = {"mode": mode, **counts, "files": {}, "unsynced_entries_dropped": lost_entries}
    for p, obj in names.items():
        image = bytearray(obj.durable)
        n = len(obj.pending)
        keep = n if mode == "all" else (rng.randint(0, n) if mode == "prefix" else 0)
        for x in obj.pending[:keep]:
            apply(image, x)
        rel = os.path.relpath(p, live)
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(image)
        summary["files"][rel] = {"bytes": len(image), "unsynced_changes": n, "kept": keep}
    json.dump(summary, sys.stdout)
    print()


def namespace_apply(names, x):
    if x[0] == "link":
        names[x[1]] = x[2]
    elif x[0] == "unlink":
        names.pop(x[1], None)
    else:
        names.pop(x[1], None)
        names[x[2]] = x[3]


if __name__ == "__main__":
    main()
