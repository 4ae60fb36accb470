#!/usr/bin/env python3
"""A loopback HTTP proxy between strata and a docker-registry, for tests only (python3 stdlib).

It forwards every request to the registry and injects the faults a client must survive
(RFC 9110 range semantics; shared/specs/layer-formats.md §3):
  * a multi-range GET (Range with a ',') is sent upstream without Range and answered 200 with
    the whole blob, as registries without multi-range support do;
  * the first whole-blob GET of each blob is cut off after half its body (connection dropped);
  * in a repository whose name holds "/corrupt", blobs over 64 KiB get one byte flipped: a quarter
    into a whole answer (inside the half that a dropped answer delivers), mid-way into a range
    answer that starts in the blob's first half (a chunked layer's TOC at the end stays intact,
    the damage lands in layer data);
  * a repository whose name holds "/norange" ignores Range headers (answers 200, whole blob), as
    registries without range support do;
  * GET .../tags/list?n=N[&last=T] is paginated here (docker-registry 2.8 ignores n): sorted
    tags after T, at most N, and a Link rel="next" header when more follow.
Each request is logged to the log file as "METHOD PATH range=... -> STATUS fault".
With a fourth argument "bearer" it injects no faults and plays a token-authenticated registry
instead (the Docker token protocol): /v2/ requests without "Authorization: Bearer <token>" get 401
with a Bearer challenge whose realm is this proxy's /token, which hands out the token only for
Basic credentials tester:s3cret, and only for the scope asked.
Usage: registry_fault_proxy.py UPSTREAM_PORT PORT_FILE LOG_FILE [bearer]
"""
import base64
import http.client
import os
import http.server
import json
import socket
import sys
import threading
import urllib.parse

UPSTREAM_PORT = int(sys.argv[1])
PORT_FILE = sys.argv[2]
LOG_FILE = sys.argv[3]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length",
              "proxy-connection", "trailer"}
BEARER = len(sys.argv) > 4 and sys.argv[4] == "bearer"
BASIC_CREDENTIALS = "Basic " + base64.b64encode(b"tester:s3cret").decode()
issued_tokens = {}  # token -> scopes it grants
seen_blobs = set()
lock = threading.Lock()


def log(line):
    with lock, open(LOG_FILE, "a") as out:
        out.write(line + "\n")


def corruptible(response, data):
    """Whether a blob answer gets a flipped byte in a /corrupt repository (see the docstring)."""
    if response.status == 200:
        return len(data) > 65536
    if response.status != 206 or not data:
        return False
    span, _, total = response.getheader("Content-Range", "").partition(" ")[2].partition("/")
    first = span.partition("-")[0]
    return first.isdigit() and total.isdigit() and int(total) > 65536 and int(first) < int(total) // 2


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def paginate_tags(self):
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=30)
        upstream.request("GET", path, headers={"Accept": "application/json"})
        response = upstream.getresponse()
        document = json.loads(response.read())
        upstream.close()
        tags = sorted(document.get("tags") or [])
        last = params.get("last", [""])[0]
        count = int(params["n"][0])
        after = [tag for tag in tags if tag > last]
        page = after[:count]
        body = json.dumps({"name": document["name"], "tags": page}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if len(after) > count:
            next_query = urllib.parse.urlencode({"n": count, "last": page[-1]})
            self.send_header("Link", f'<{path}?{next_query}>; rel="next"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(f"GET {self.path} -> 200 paginated")

    def issue_token(self):
        params = urllib.parse.parse_qs(self.path.partition("?")[2])
        if self.headers.get("Authorization") != BASIC_CREDENTIALS or params.get("service") != ["proxy"]:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        token = base64.b64encode(bytes(str(len(issued_tokens) + 1), "ascii") * 8).decode()
        issued_tokens[token] = set(params.get("scope", []))
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(f"token scopes={sorted(issued_tokens[token])}")

    def authorized(self):
        """Whether the request carries a token for its repository (any token for /v2/)."""
        header = self.headers.get("Authorization", "")
        scopes = issued_tokens.get(header[len("Bearer "):]) if header.startswith("Bearer ") else None
        path = self.path.partition("?")[0]
        repository = ""
        for marker in ("/blobs/", "/manifests/", "/tags/"):
            if marker in path:
                repository = path[len("/v2/"):path.index(marker)]
        need = "push" if self.command in ("POST", "PUT", "PATCH", "DELETE") else "pull"
        if scopes is not None and (not repository or any(
                scope.startswith(f"repository:{repository}:") and need in scope.split(":")[-1]
                for scope in scopes)):
            return True
        challenge = 'Bearer realm="http://%s/token",service="proxy"' % self.headers.get("Host")
        if repository:
            challenge += ',scope="repository:%s:%s"' % (repository, need)
        self.send_response(401)
        self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.command in ("POST", "PUT", "PATCH"):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return False

    def forward(self):
        if BEARER:
            if self.path.startswith("/token"):
                self.issue_token()
                return
            if not self.authorized():
                return
        elif self.command == "GET" and "/tags/list?" in self.path and "n=" in self.path:
            self.paginate_tags()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {}
        for key, value in self.headers.items():  # repeated headers (Accept) joined, not lost
            if key.lower() not in HOP_BY_HOP:
                headers[key] = headers[key] + ", " + value if key in headers else value
        wanted = self.headers.get("Range", "")
        multi = "," in wanted
        no_range = "/norange" in self.path and not BEARER
        if (multi or no_range) and not BEARER:
            headers.pop("Range", None)
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=30)
        upstream.request(self.command, self.path, body=body if body or self.command in
                         ("POST", "PUT", "PATCH") else None, headers=headers)
        response = upstream.getresponse()
        data = response.read() if self.command != "HEAD" else b""
        is_blob_get = self.command == "GET" and "/blobs/sha256:" in self.path and not BEARER
        fault = ""
        if is_blob_get and "/corrupt" in self.path and corruptible(response, data):
            # A whole answer is cut at half when dropped: the flip must be in what still arrives.
            at = len(data) // 4 if response.status == 200 else len(data) // 2
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
            fault = "corrupt"
        drop = False
        if is_blob_get and response.status == 200 and (not wanted or no_range) and len(data) > 1:
            with lock:
                drop = self.path not in seen_blobs
                seen_blobs.add(self.path)
        if multi and not BEARER:
            fault += " multi-range-as-200"
        elif no_range and wanted:
            fault += " range-as-200"
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        log(f"{self.command} {self.path} range={wanted} -> {response.status}"
            f"{' dropped' if drop else ''} {fault}".rstrip())
        upstream.close()
        if drop:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if data:
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients closing connections early is what this proxy provokes


server = QuietServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
