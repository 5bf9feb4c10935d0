#!/usr/bin/env python3
"""An ejabberd external authentication program, for koi's extauth plugin.

It speaks ejabberd's extauth protocol on stdin and stdout: each request is
a 2-byte big-endian length followed by one of

    auth:User:Server:Password      isuser:User:Server
    setpass:User:Server:Password   tryregister:User:Server:Password
    removeuser:User:Server         removeuser3:User:Server:Password

and each answer is the length 2 then the result, 1 (success) or 0
(failure), both 2-byte big-endian. Passwords may contain ':', so only the
fields before the password are split off.

Accounts live in a JSON file, {"user@server": "password", ...}, locked
while it is read or changed, so that several copies of the program (koi's
`instances`) can share it. Passwords are stored in clear: this is an
example of the protocol, not of password storage.

    extauth.py USERS.json [--test-hooks]

--test-hooks makes a few user names misbehave, for koi's tests: any
request about "die" exits without answering, "hang" never answers, and
"slow" answers after 0.3 s, saying on stderr which process served it.

Only the standard library is used.
"""

import fcntl
import json
import os
import struct
import sys
import time


def read_exact(n):
    """Reads n bytes from stdin, or returns None at end of input."""
    buf = b""
    while len(buf) < n:
        chunk = sys.stdin.buffer.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class Store:
    """The accounts file, read and written under an exclusive lock."""

    def __init__(self, path):
        self.path = path
        self.lock_path = path + ".lock"

    def __enter__(self):
        self.lock = open(self.lock_path, "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            with open(self.path, encoding="utf-8") as f:
                self.users = json.load(f) or {}
        except FileNotFoundError:
            self.users = {}
        self.changed = False
        return self

    def __exit__(self, *exc):
        try:
            if self.changed and exc[0] is None:
                tmp = self.path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(self.users, f, ensure_ascii=False, sort_keys=True)
                os.replace(tmp, self.path)
        finally:
            self.lock.close()  # releases the lock
        return False


def handle(store, request, test_hooks):
    op, _, rest = request.partition(":")
    with_password = op in ("auth", "setpass", "tryregister", "removeuser3")
    fields = rest.split(":", 2 if with_password else 1)
    if len(fields) != (3 if with_password else 2):
        print("malformed request: %r" % op, file=sys.stderr, flush=True)
        return False
    user, server = fields[0], fields[1]
    password = fields[2] if with_password else None

    if test_hooks:
        if user == "die":
            os._exit(3)
        if user == "hang":
            time.sleep(3600)
        if user == "slow":
            time.sleep(0.3)
            print("slow request served by pid %d" % os.getpid(), file=sys.stderr, flush=True)

    key = user + "@" + server
    with store as s:
        if op == "auth":
            return s.users.get(key) == password
        if op == "isuser":
            return key in s.users
        if op == "setpass":
            if key not in s.users:
                return False
            s.users[key] = password
            s.changed = True
            return True
        if op == "tryregister":
            if key in s.users:
                return False
            s.users[key] = password
            s.changed = True
            return True
        if op == "removeuser" or op == "removeuser3":
            if key not in s.users or (op == "removeuser3" and s.users[key] != password):
                return False
            del s.users[key]
            s.changed = True
            return True
    print("unknown operation %r" % op, file=sys.stderr, flush=True)
    return False


def main():
    args = sys.argv[1:]
    test_hooks = "--test-hooks" in args
    args = [a for a in args if a != "--test-hooks"]
    if len(args) != 1:
        print("usage: extauth.py USERS.json [--test-hooks]", file=sys.stderr)
        return 2
    store = Store(args[0])
    while True:
        header = read_exact(2)
        if header is None:
            return 0  # koi closed our stdin: time to go
        (length,) = struct.unpack(">H", header)
        body = read_exact(length)
        if body is None:
            return 0
        try:
            ok = handle(store, body.decode("utf-8"), test_hooks)
        except Exception as e:  # answer 0 rather than leave koi waiting
            print("error: %s" % e, file=sys.stderr, flush=True)
            ok = False
        sys.stdout.buffer.write(struct.pack(">HH", 2, 1 if ok else 0))
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
