"""A small HTTP client for the code-interpreter API (standard library only).

The service's address comes from the environment that run.py sets:
E2E_HOST (default 127.0.0.1) and E2E_PORT. No keep-alive: every call opens a
new connection, so one test's broken connection never leaks into the next.
"""
import http.client
import json
import os
import socket
import time

HOST = os.environ.get("E2E_HOST", "127.0.0.1")


def port():
    return int(os.environ.get("E2E_PORT", "50081"))


class Response:
    """What one HTTP exchange produced. `json` is None when the body is not JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict with lower-cased names
        self.body = body        # raw bytes
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
            self.json_ok = body != b""
        except (UnicodeDecodeError, ValueError):
            self.json = None
            self.json_ok = False

    def __iter__(self):  # allows: status, headers, js = client.execute(...)
        return iter((self.status, self.headers, self.json))

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:500])


def raw(method, path, body=None, headers=None, timeout=120):
    """Sends one request as given and returns a Response. `body` may be bytes or str."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(HOST, port(), timeout=timeout)
    try:
        hdrs = {"Connection": "close"}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def execute(source, files=None, env=None, timeout=None, http_timeout=None, subdirectories=None):
    """POST /v1/execute. Returns a Response, which unpacks as (status, headers, json)."""
    req = {"source_code": source}
    if subdirectories is not None:
        req["include_subdirectories"] = subdirectories
    if files is not None:
        req["files"] = files
    if env is not None:
        req["env"] = env
    if timeout is not None:
        req["timeout"] = timeout
    if http_timeout is None:
        # the run itself, waiting for a sandbox (APP_CLAIM_TIMEOUT) and collecting files
        http_timeout = (timeout if timeout is not None else 60) + 90
    return raw("POST", "/v1/execute", json.dumps(req), timeout=http_timeout)


def raw_headers_only(path, content_length, first=b"{"):
    """Sends a POST's headers announcing content_length and a first byte, no more;
    returns a Response built from what came back."""
    s = socket.create_connection((HOST, port()), timeout=30)
    data = b""
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n" % (path, content_length)).encode() + first)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(status, headers, body)
