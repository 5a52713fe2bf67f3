"""Latency of the teacher client (``recipe.zppo.teacher.client``) on its concurrency and fail-fast paths.

    python -m benchmarks.bench_teacher_client [--delay-s 0.4] [--questions 8] [--model DIR] [--out PATH]

Measurements against local sockets (no model unless ``--model``; a few seconds in all):

- concurrency: ``--questions`` requests submitted to a fake OpenAI-compatible server (tests/fake_openai.py) that
  answers each after ``--delay-s``, with ``max_concurrency`` = questions; sequential requests would take
  questions x delay. Goal: under half the sequential time (the server's peak of concurrent requests and the
  client's ``busy_s`` are reported too).
- closed port: one request to a port where nothing listens, ``max_retries=2`` and ``timeout_s=5``: a refused
  connection must fail at once (only openai's backoff between the 3 attempts, about 0.4-0.5 s then 0.75-1 s),
  never wait the timeout. Goal: under 3 s.
- with ``--model DIR`` (a Hugging Face folder, e.g. the tiny Qwen3): the same number of requests (32 new tokens
  each, sampled) to a real ``transformers serve`` on the CPU started by ``TeacherService``, one at a time and then
  all submitted at once; reported, no goal (a CPU server's overlap depends on its cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/bench_teacher_client.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Report, default_output
from recipe.zppo.teacher.client import TeacherClient, TeacherClientConfig
from tests.fake_openai import FakeOpenAIServer, closed_port

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def _ask_all(client: TeacherClient, questions: int, max_tokens: int = 8) -> tuple[float, list]:
    started = time.perf_counter()
    futures = [client.submit(MESSAGES, max_tokens=max_tokens, temperature=1.0) for _ in range(questions)]
    wait(futures)
    return time.perf_counter() - started, [f.result() for f in futures]


def measure_concurrency(report: Report, questions: int, delay_s: float) -> None:
    with FakeOpenAIServer(delay_s=delay_s) as server:
        with TeacherClient(server.url, "m", TeacherClientConfig(timeout_s=30, max_retries=0,
                                                                max_concurrency=questions)) as client:
            wall, replies = _ask_all(client, questions)
            busy = client.stats()["busy_s"]
    answered = sum(r.error is None for r in replies)
    sequential = questions * delay_s
    report.row("teacher client", f"{questions} questions, server delay {delay_s:g} s", wall_s=wall,
               sequential_s=sequential, answered=answered, peak_concurrent=server.max_active, busy_s=busy)
    report.goal("teacher client: concurrent questions, wall / sequential time", wall / sequential, 0.5, "x",
                note=f"{answered}/{questions} answered, peak {server.max_active} concurrent requests")


def measure_closed_port(report: Report) -> None:
    client = TeacherClient(f"http://127.0.0.1:{closed_port()}", "m", TeacherClientConfig(timeout_s=5, max_retries=2))
    started = time.perf_counter()
    reply = client.chat(MESSAGES, max_tokens=8, temperature=0.0)
    wall = time.perf_counter() - started
    client.close()
    report.row("teacher client", "closed port, 3 attempts, timeout 5 s", wall_s=wall, error=reply.error)
    report.goal("teacher client: closed port fails without waiting the timeout", wall, 3.0, "s",
                note="openai's backoff between the attempts")


def measure_real_server(report: Report, questions: int, model: Path) -> None:
    from recipe.zppo.teacher.service import TeacherServerConfig, TeacherService

    with tempfile.TemporaryDirectory() as tmp:
        service = TeacherService(TeacherServerConfig(model=str(model), engine="transformers", startup_timeout_s=300),
                                 Path(tmp) / "serve.log")
        try:
            started = time.perf_counter()
            url, name = service.start()
            startup = time.perf_counter() - started
            config = TeacherClientConfig(timeout_s=120, max_retries=0, max_concurrency=questions)
            with TeacherClient(url, name, config) as client:
                client.chat(MESSAGES, max_tokens=4, temperature=1.0)  # warm-up
                started = time.perf_counter()
                one_by_one = [client.chat(MESSAGES, max_tokens=32, temperature=1.0) for _ in range(questions)]
                sequential = time.perf_counter() - started
                wall, replies = _ask_all(client, questions, max_tokens=32)
        finally:
            service.stop()
    answered = sum(r.error is None for r in replies) + sum(r.error is None for r in one_by_one)
    report.row("teacher client", f"transformers serve, {questions} x 32 tokens", wall_s=wall,
               sequential_s=sequential, answered=answered, startup_s=startup)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-s", type=float, default=0.4)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--model", type=Path, default=None,
                        help="also measure a real transformers serve of this model folder (CPU)")
    parser.add_argument("--out", type=Path, default=default_output("bench_teacher_client"))
    args = parser.parse_args(argv)
    report = Report("bench_teacher_client", {"delay_s": args.delay_s, "questions": args.questions,
                                             "model": str(args.model) if args.model else None})
    measure_concurrency(report, args.questions, args.delay_s)
    measure_closed_port(report)
    if args.model is not None:
        measure_real_server(report, args.questions, args.model)
    return report.finish([("name", "measurement"), ("wall_s", "wall"), ("sequential_s", "sequential"),
                          ("answered", "answered"), ("peak_concurrent", "peak concurrent")], args.out)


if __name__ == "__main__":
    sys.exit(main())
