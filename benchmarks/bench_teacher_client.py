"""Latency of the online teacher client (``recipe.zppo.teacher.client``) on its concurrency and fail-fast paths.

    python -m benchmarks.bench_teacher_client [--delay-s 0.4] [--questions 8] [--out PATH]

Two measurements against local sockets (no model, a few seconds in all):

- concurrency: ``--questions`` questions to a fake OpenAI-compatible server that answers each request after
  ``--delay-s``, with ``max_concurrency`` = questions; sequential requests would take questions x delay.
  Goal: under half the sequential time (the server's peak of concurrent requests is reported too).
- closed port: one question to a port where nothing listens, ``max_retries=2`` and ``timeout_s=5``: a refused
  connection must fail at once (only the backoff between attempts, 0.25 s + 0.5 s), never wait the timeout.
  Goal: under 3 s.

These were wall-clock asserts of tests/unit/test_online_teacher.py; the tests keep the functional checks (every
answer arrives, the server saw concurrent requests; the closed port's error and attempt count).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/bench_teacher_client.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Report, default_output
from recipe.zppo.teacher.client import OnlineTeacher, OnlineTeacherConfig, TeacherRequest


class _SlowServer:
    """An OpenAI-compatible chat-completions server that answers every request after ``delay_s``."""

    def __init__(self, delay_s: float):
        outer = self
        self.lock = threading.Lock()
        self.active = self.max_active = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    time.sleep(delay_s)
                finally:
                    with outer.lock:
                        outer.active -= 1
                choices = [{"index": k, "message": {"role": "assistant", "content": f"\\boxed{{{k}}}"},
                            "finish_reason": "stop"} for k in range(body.get("n", 1))]
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": choices}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _client(url: str, **overrides) -> OnlineTeacher:
    cfg = {"url": url, "model": "m", "enable": True, "timeout_s": 2, "max_retries": 1, "max_tokens": 8,
           "num_responses": 1, **overrides}
    return OnlineTeacher(OnlineTeacherConfig.from_dict(cfg))


def _question(qid: str) -> TeacherRequest:
    return TeacherRequest(qid, [{"role": "user", "content": "What is 2 + 3?"}], ())


def measure_concurrency(report: Report, questions: int, delay_s: float) -> None:
    server = _SlowServer(delay_s)
    try:
        client = _client(server.url, max_concurrency=questions)
        started = time.perf_counter()
        results = client.responses([_question(f"q{i}") for i in range(questions)])
        wall = time.perf_counter() - started
    finally:
        server.close()
    answered = sum(r.error is None for r in results)
    sequential = questions * delay_s
    report.row("teacher client", f"{questions} questions, server delay {delay_s:g} s", wall_s=wall,
               sequential_s=sequential, answered=answered, peak_concurrent=server.max_active)
    report.goal("teacher client: concurrent questions, wall / sequential time", wall / sequential, 0.5, "x",
                note=f"{answered}/{questions} answered, peak {server.max_active} concurrent requests")


def measure_closed_port(report: Report) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", max_retries=2, timeout_s=5)
    started = time.perf_counter()
    [result] = client.responses([_question("q")])
    wall = time.perf_counter() - started
    report.row("teacher client", "closed port, 3 attempts, timeout 5 s", wall_s=wall, error=result.error)
    report.goal("teacher client: closed port fails without waiting the timeout", wall, 3.0, "s",
                note="backoff between attempts 0.25 s + 0.5 s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-s", type=float, default=0.4)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--out", type=Path, default=default_output("bench_teacher_client"))
    args = parser.parse_args(argv)
    report = Report("bench_teacher_client", {"delay_s": args.delay_s, "questions": args.questions})
    measure_concurrency(report, args.questions, args.delay_s)
    measure_closed_port(report)
    return report.finish([("name", "measurement"), ("wall_s", "wall"), ("sequential_s", "sequential"),
                          ("answered", "answered"), ("peak_concurrent", "peak concurrent")], args.out)


if __name__ == "__main__":
    sys.exit(main())
