"""Online teacher: the client (recipe.zppo.teacher.client) against the real CPU server (recipe.zppo.teacher.server) with
the tiny text model, and against small fake servers for every failure path. Every wait is bounded."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recipe.zppo.teacher.client import (
    IMAGE_OMITTED,
    OnlineTeacher,
    OnlineTeacherConfig,
    TeacherConfigError,
    TeacherRequest,
    TeacherResult,
    chat_completions_url,
    join_reasoning,
    to_openai_messages,
)

from ..conftest import start_teacher_server, stop_process

CLOSER = "Think step by step inside <think></think> tags, then give the final answer inside \\boxed{}."
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # magic bytes are all the client looks at


def question(qid: str, text: str = "What is 2 + 3?", images=()) -> TeacherRequest:
    return TeacherRequest(qid, [{"role": "user", "content": f"{text}\n\n{CLOSER}"}], images)


def teacher(url: str, **overrides) -> OnlineTeacher:
    cfg = {"url": url, "model": "m", "enable": True, "timeout_s": 2, "max_retries": 1, "max_tokens": 8, **overrides}
    return OnlineTeacher(OnlineTeacherConfig.from_dict(cfg))


# ------------------------------------------------------------------------------------------------ real server


@pytest.fixture(scope="module")
def real_server(tiny_assets, tmp_path_factory):
    """``python -m recipe.zppo.teacher_server`` on a free port with the tiny text model; yields (url, model)."""
    model = str(tiny_assets["text-model"])
    proc, url = start_teacher_server(model, tmp_path_factory.mktemp("teacher") / "server.log", "--max-tokens", "32")
    try:
        yield url, model
    finally:
        stop_process(proc)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_real_server_port_endpoints_and_openai_shape(real_server):
    url, model = real_server
    assert int(url.rsplit(":", 1)[1]) > 0  # --port 0 printed the real port
    assert get_json(url + "/health") == {"status": "ok"}
    assert get_json(url + "/v1/models")["data"][0]["id"] == model
    status, reply = post(url + "/v1/chat/completions", json.dumps({
        "model": model, "messages": [{"role": "user", "content": "hi"}], "n": 3, "max_tokens": 5,
        "temperature": 0.7, "top_p": 0.9}).encode())
    assert status == 200
    assert reply["object"] == "chat.completion" and reply["model"] == model and reply["id"]
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
    for choice in reply["choices"]:
        assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b"[]", 400),
    (json.dumps({"messages": []}).encode(), 400),
    (json.dumps({"messages": [{"content": "no role"}]}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 0}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(), 400),
    (json.dumps({"model": "another", "messages": [{"role": "user", "content": "x"}]}).encode(), 404),
])
def test_real_server_bad_input_is_an_openai_error(real_server, body, status):
    url, _ = real_server
    got, reply = post(url + "/v1/chat/completions", body)
    assert got == status
    assert isinstance(reply["error"]["message"], str) and reply["error"]["type"] == "invalid_request_error"


def test_real_server_responses_cache_and_concurrency(real_server):
    url, model = real_server
    client = teacher(url, model=model, num_responses=2, max_tokens=12, timeout_s=30, max_concurrency=4)
    asked = [question(f"q{i}", f"What is {i} + {i}?") for i in range(6)]
    before = get_json(url + "/stats")["requests"]
    results = client.responses(asked)
    assert [r.question_id for r in results] == [f"q{i}" for i in range(6)]
    for result in results:
        assert result.error is None and not result.cached
        assert len(result.texts) == 2 and all(isinstance(t, str) for t in result.texts)
    assert get_json(url + "/stats")["requests"] - before == 6  # one request per question (n=2 in it)
    stats = client.stats()
    assert stats["questions"] == 6 and stats["requests"] == 6 and stats["failures"] == 0
    assert stats["n_fallbacks"] == 0 and stats["cache_entries"] == 6

    again = client.responses(asked[:3] + [asked[0]])  # cached, a repeated id included
    assert [r.texts for r in again] == [r.texts for r in results[:3]] + [results[0].texts]
    assert all(r.cached and r.error is None for r in again)
    assert get_json(url + "/stats")["requests"] - before == 6  # no new HTTP request
    assert client.stats()["cache_hits"] == 3 and client.stats()["requests"] == 6  # a repeated id counts once


def test_real_server_text_only_drops_images_and_unknown_model_fails_cleanly(real_server):
    url, model = real_server
    client = teacher(url, model=model, num_responses=1)
    [result] = client.responses([question("img", "<image>What digit is drawn?", images=[{"bytes": PNG}])])
    assert result.error is None and len(result.texts) == 1  # image_url part sent, flattened by the server
    assert client.stats()["images_sent"] == 1

    wrong = teacher(url, model="not-served", num_responses=2)
    [failed] = wrong.responses([question("w")])
    assert failed.texts == [] and "404" in failed.error and "does not exist" in failed.error
    assert wrong.stats()["requests"] == 1  # a 4xx is not retried
    assert wrong.stats()["cache_entries"] == 0  # errors are not cached


# ------------------------------------------------------------------------------------------------ fake servers


class FakeServer:
    """A local HTTP server whose POST handler is ``reply(server, body, headers) -> (status, payload | bytes)``."""

    def __init__(self, reply, delay_s: float = 0.0):
        outer = self
        self.reply, self.delay_s = reply, delay_s
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        self.active = self.max_active = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    outer.headers.append(dict(self.headers))
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                    index = len(outer.bodies) - 1
                try:
                    time.sleep(outer.delay_s)
                    status, payload = outer.reply(index, body)
                finally:
                    with outer.lock:
                        outer.active -= 1
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(reply, delay_s: float = 0.0) -> FakeServer:
        servers.append(FakeServer(reply, delay_s))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def completion(*messages: dict) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": i, "message": {"role": "assistant", **m}, "finish_reason": "stop"}
                        for i, m in enumerate(messages)]}


def ok_reply(index, body):
    return 200, completion(*({"content": f"<think>r</think>\\boxed{{{index}.{k}}}"} for k in range(body["n"])))


def test_request_body_and_api_key(fake, monkeypatch):
    server = fake(ok_reply)
    monkeypatch.setenv("ZPPO_TEST_TEACHER_KEY", "sekret")
    client = teacher(server.url, api_key_env="ZPPO_TEST_TEACHER_KEY", num_responses=3, max_tokens=7,
                     temperature=0.6)
    [result] = client.responses([TeacherRequest("q", [{"role": "system", "content": "be brief"},
                                                      {"role": "user", "content": "2+2?"}])])
    assert result.texts == ["<think>r</think>\\boxed{0.0}", "<think>r</think>\\boxed{0.1}",
                            "<think>r</think>\\boxed{0.2}"]
    body = server.bodies[0]
    assert body == {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "2+2?"}],
                    "n": 3, "max_tokens": 7, "temperature": 0.6}
    assert server.headers[0]["Authorization"] == "Bearer sekret"
    monkeypatch.delenv("ZPPO_TEST_TEACHER_KEY")
    with pytest.raises(TeacherConfigError, match="zppo.teacher.online.api_key_env"):
        teacher(server.url, api_key_env="ZPPO_TEST_TEACHER_KEY")


def test_reasoning_content_is_joined_back(fake):
    server = fake(lambda i, body: (200, completion(
        {"content": "\\boxed{4}", "reasoning_content": "2+2 is 4"},
        {"content": "\\boxed{5}", "reasoning": "newer vLLM field"},
        {"content": None, "reasoning_content": "cut off"})))
    [result] = teacher(server.url, num_responses=3).responses([question("q")])
    assert result.texts == ["<think>2+2 is 4</think>\\boxed{4}", "<think>newer vLLM field</think>\\boxed{5}",
                            "<think>cut off</think>"]
    assert join_reasoning({"content": "<think>a</think>b", "reasoning_content": None}) == "<think>a</think>b"
    in_answer = {"content": "\\boxed{1}", "reasoning": "use <think> tags"}  # a literal tag is not a think block
    assert join_reasoning(in_answer) == "<think>use <think> tags</think>\\boxed{1}"


def test_closed_port_is_a_connection_error_after_every_attempt():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = teacher(f"http://127.0.0.1:{port}", max_retries=2, timeout_s=5)
    # That this fails at once (no timeout waited) is measured by benchmarks/bench_teacher_client.py.
    [result] = client.responses([question("q")])
    assert result.texts == [] and "connection failed" in result.error and "3 attempts" in result.error
    assert client.stats()["failures"] == 1 and client.stats()["requests"] == 3


def test_silent_server_times_out_within_the_bound():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the kernel; nothing ever answers
    try:
        client = teacher(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.4, max_retries=1,
                         max_concurrency=2)
        started = time.monotonic()
        results = client.responses([question("a"), question("b")])
        elapsed = time.monotonic() - started
        assert elapsed < 0.4 * 2 + 1.0 + 0.5, elapsed
        assert all(r.texts == [] and "timed out" in r.error for r in results)
        assert client.stats()["timeouts"] == 4 and client.stats()["failures"] == 2
    finally:
        listener.close()


def test_trickling_server_is_cut_at_the_deadline():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():  # one byte every 0.1 s: each read succeeds, the reply never ends
            try:
                conn.sendall(b" ")
            except OSError:
                break
            time.sleep(0.1)
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        client = teacher(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5, max_retries=0)
        started = time.monotonic()
        [result] = client.responses([question("q")])
        assert time.monotonic() - started < 0.5 + 1.0 + 0.5
        assert result.texts == [] and "timed out" in result.error
    finally:
        stop.set()
        listener.close()


def test_a_stuck_worker_is_left_behind_at_the_call_deadline(fake, monkeypatch):
    import recipe.zppo.teacher.client as teacher_module

    monkeypatch.setattr(teacher_module, "CALL_SLACK_S", 0.1)
    client = teacher(fake(ok_reply).url, num_responses=1)
    client.question_budget_s = 0.2
    release = threading.Event()
    monkeypatch.setattr(client, "_fetch_one", lambda req: release.wait(5) and TeacherResult(req.question_id))
    started = time.monotonic()
    [result] = client.responses([question("q")])
    release.set()
    assert time.monotonic() - started < 1.0
    assert result.texts == [] and "client deadline" in result.error and client.stats()["failures"] == 1


def test_500_then_200_is_retried(fake):
    server = fake(lambda i, body: (500, {"error": {"message": "busy"}}) if i == 0 else ok_reply(i, body))
    client = teacher(server.url, num_responses=2)
    [result] = client.responses([question("q")])
    assert result.error is None and len(result.texts) == 2
    assert len(server.bodies) == 2 and client.stats()["retries"] == 1 and client.stats()["failures"] == 0


def test_malformed_reply_is_retried_and_a_4xx_is_not(fake):
    bad = fake(lambda i, body: (200, b"<html>not json</html>"))
    client = teacher(bad.url, max_retries=1)
    [result] = client.responses([question("q")])
    assert result.texts == [] and "malformed reply" in result.error and len(bad.bodies) == 2

    denied = fake(lambda i, body: (401, {"error": {"message": "invalid api key"}}))
    client = teacher(denied.url, max_retries=3)
    [result] = client.responses([question("q")])
    assert "401" in result.error and "invalid api key" in result.error and len(denied.bodies) == 1


def test_server_rejecting_n_falls_back_to_single_requests(fake):
    def reply(i, body):
        if body["n"] > 1:
            return 400, {"error": {"message": "n must be 1"}}
        return 200, completion({"content": f"answer {i}"})

    server = fake(reply)
    client = teacher(server.url, num_responses=3)
    [first] = client.responses([question("a")])
    assert first.error is None and first.texts == ["answer 1", "answer 2", "answer 3"]
    [second] = client.responses([question("b")])  # remembered: straight to n=1
    assert len(second.texts) == 3
    assert [b["n"] for b in server.bodies] == [3, 1, 1, 1, 1, 1, 1]
    assert client.stats()["n_fallbacks"] == 2


def test_server_ignoring_n_is_topped_up(fake):
    server = fake(lambda i, body: (200, completion({"content": f"only {i}"})))
    [result] = teacher(server.url, num_responses=3).responses([question("q")])
    assert result.texts == ["only 0", "only 1", "only 2"]
    assert [b["n"] for b in server.bodies] == [3, 1, 1]


def test_requests_run_concurrently(fake):
    server = fake(ok_reply, delay_s=0.4)
    client = teacher(server.url, num_responses=1, max_concurrency=8)
    results = client.responses([question(f"q{i}") for i in range(8)])
    # The server saw concurrent requests; the time saved is measured by benchmarks/bench_teacher_client.py.
    assert all(r.error is None for r in results) and server.max_active >= 4

    bounded = teacher(server.url, num_responses=1, max_concurrency=2)
    bounded.responses([question(f"b{i}") for i in range(4)])
    assert server.max_active <= 8


def test_errors_are_not_cached_and_the_cache_is_an_lru(fake):
    healthy = threading.Event()
    server = fake(lambda i, body: ok_reply(i, body) if healthy.is_set() else (503, {"error": {"message": "down"}}))
    client = teacher(server.url, num_responses=1, max_retries=0, cache_size=2)
    [failed] = client.responses([question("a")])
    assert failed.error and failed.texts == []
    healthy.set()
    [ok] = client.responses([question("a")])  # asked again: the failure was not cached
    assert ok.error is None and not ok.cached and len(server.bodies) == 2

    client.responses([question("b"), question("c")])  # capacity 2: "a" is the least recently used, evicted
    assert len(server.bodies) == 4
    assert client.responses([question("c")])[0].cached
    assert not client.responses([question("a")])[0].cached and len(server.bodies) == 5

    state = client.state_dict()
    fresh = teacher(server.url, num_responses=1, cache_size=2)
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert fresh.responses([question("a")])[0].cached and len(server.bodies) == 5


# ------------------------------------------------------------------------------------------------ messages


def test_images_become_data_urls_or_notes():
    png_b64 = base64.b64encode(PNG).decode()
    messages = [{"role": "user", "content": "<image>left <image>right <video>clip"}]
    converted, sent, dropped = to_openai_messages(messages, [{"bytes": PNG, "path": None}, b"not an image"])
    assert (sent, dropped) == (1, 2)
    assert converted == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_b64}"}},
        {"type": "text", "text": f"left {IMAGE_OMITTED}right [video omitted]clip"}]}]

    text_only, sent, dropped = to_openai_messages(messages, [PNG, PNG], send_images=False)
    assert (sent, dropped) == (0, 3)
    assert text_only[0]["content"] == f"{IMAGE_OMITTED}left {IMAGE_OMITTED}right [video omitted]clip"

    parts = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what?"}]}]
    converted, sent, dropped = to_openai_messages(parts, [PNG, PNG])  # one extra image, no place for it
    assert converted[0]["content"][0]["type"] == "image_url" and (sent, dropped) == (1, 1)
    assert to_openai_messages([{"role": "user", "content": "plain"}])[0] == [{"role": "user", "content": "plain"}]

    np = pytest.importorskip("numpy")  # a parquet row read through pandas: object arrays, extra keys dropped
    row = np.array([{"role": "user", "content": np.array([{"type": "image"}, {"type": "text", "text": "hi"}]),
                     "extra": object()}], dtype=object)
    converted, sent, dropped = to_openai_messages(row, np.array([{"bytes": PNG}], dtype=object))
    assert converted[0]["role"] == "user" and set(converted[0]) == {"role", "content"} and (sent, dropped) == (1, 0)


def test_any_base_url_form_becomes_the_chat_completions_endpoint():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


# ------------------------------------------------------------------------------------------------ config


def test_config_from_dict_fills_the_defaults():
    cfg = OnlineTeacherConfig.from_dict({"url": "http://localhost:8000", "model": "teacher"})
    assert (cfg.num_responses, cfg.max_tokens, cfg.temperature, cfg.timeout_s, cfg.max_retries,
            cfg.max_concurrency, cfg.cache_size, cfg.enable, cfg.api_key_env) == (2, 1024, 1.0, 60, 2, 8, 100_000,
                                                                                 False, None)
    assert OnlineTeacherConfig.from_dict({"enable": False, "url": None}).url == ""
    omegaconf = pytest.importorskip("omegaconf")
    d = omegaconf.OmegaConf.create({"url": "http://h:1", "model": "m", "enable": True, "timeout_s": 1.5})
    assert OnlineTeacherConfig.from_dict(d).timeout_s == 1.5


@pytest.mark.parametrize("key, value", [
    ("num_responses", 0), ("num_responses", 2.0), ("num_responses", True), ("max_tokens", -1),
    ("temperature", -0.1), ("temperature", "1"), ("timeout_s", 0), ("timeout_s", float("nan")),
    ("max_retries", -1), ("max_concurrency", 0), ("cache_size", -5), ("url", "localhost:8000"), ("url", 3),
    ("api_key_env", ""), ("enable", "yes"), ("send_images", 1), ("colour", "red"),
])
def test_config_errors_name_the_key(key, value):
    d = {"url": "http://localhost:8000", "model": "m", key: value}
    with pytest.raises(TeacherConfigError, match=rf"^zppo\.teacher\.online\.{key}\b"):
        OnlineTeacherConfig.from_dict(d)


@pytest.mark.parametrize("missing", ["url", "model"])
def test_config_enabled_needs_url_and_model(missing):
    d = {"url": "http://localhost:8000", "model": "m", "enable": True}
    del d[missing]
    with pytest.raises(TeacherConfigError, match=rf"^zppo\.teacher\.online\.{missing}\b"):
        OnlineTeacherConfig.from_dict(d)


def test_a_bare_result_has_no_texts_no_error_and_is_not_cached():
    assert TeacherResult("q") == TeacherResult("q", [], None, False)
