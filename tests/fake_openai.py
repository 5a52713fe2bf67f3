"""Small stand-ins for an OpenAI-compatible server, on loopback in a thread: for the teacher client's tests and
its benchmark (``benchmarks/bench_teacher_client.py``).

- ``FakeOpenAIServer``: answers ``POST /v1/chat/completions`` after ``delay_s`` with one choice (or with what
  ``respond`` returns), records every request's body and headers and the peak of concurrent requests; ``GET
  /health`` is 200 and ``GET /v1/models`` lists ``model``.
- ``SilentServer``: accepts connections and never answers (a hung server).
- ``closed_port()``: a loopback port where nothing listens.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# respond(body) -> (HTTP status, body: a dict sent as JSON, or bytes sent as they are)
Responder = Callable[[dict], "tuple[int, dict | bytes]"]


def completion_body(content: str = "<think>2 plus 3</think>\\boxed{5}", finish_reason: str = "stop",
                    prompt_tokens: int = 11, completion_tokens: int = 7, **message_fields) -> dict:
    """An OpenAI chat-completion reply with one choice."""
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content, **message_fields}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class FakeOpenAIServer:
    """See the module docstring. ``url`` is the server root; ``bodies`` (``headers``) those of the chat requests
    received, in order."""

    def __init__(self, delay_s: float = 0.0, respond: Responder | None = None, model: str = "fake-model"):
        outer = self
        self.delay_s = delay_s
        self.model = model
        self.respond = respond or (lambda body: (200, completion_body()))
        self.lock = threading.Lock()
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.active = self.max_active = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, payload) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/health":
                    self._send(200, {"status": "ok"})
                elif self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                with outer.lock:
                    outer.bodies.append(body)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    time.sleep(outer.delay_s)
                    status, payload = outer.respond(body)
                finally:
                    with outer.lock:
                        outer.active -= 1
                self._send(status, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> int:
        with self.lock:
            return len(self.bodies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SilentServer:
    """Listens and accepts, never reads or answers; ``url`` is its root."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        for conn in self.accepted:
            conn.close()
        self.sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
