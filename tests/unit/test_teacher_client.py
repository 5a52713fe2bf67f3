"""The teacher client (recipe.zppo.teacher.client) and service (recipe.zppo.teacher.service): against a REAL
``transformers serve`` of the tiny text model (started by ``TeacherService`` once for the module, stopped by the
last test), and against the small fake servers of tests/fake_openai.py for what a real server does not show
(request bodies, concurrency, hangs, malformed replies). Every wait is bounded."""

from __future__ import annotations

import base64
import os
import socket
import sys
import time
from concurrent.futures import wait

import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.teacher import service as service_module
from recipe.zppo.teacher.client import (
    IMAGE_OMITTED,
    Completion,
    Reply,
    TeacherClient,
    TeacherClientConfig,
    join_reasoning,
    normalise_base_url,
    to_openai_messages,
)
from recipe.zppo.teacher.service import TeacherServerConfig, TeacherService

from ..conftest import start_teacher_server
from ..fake_openai import FakeOpenAIServer, SilentServer, closed_port, completion_body

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # magic bytes are all the client looks at


def question(text: str = "What is 2 + 3?") -> list[dict]:
    return [{"role": "user", "content": f"{text}\n\n{ANSWER_CLOSER}"}]


def client_of(url: str, model: str = "m", **config) -> TeacherClient:
    return TeacherClient(url, model, TeacherClientConfig(**{"timeout_s": 5, "max_retries": 0, **config}))


@pytest.fixture
def fake():
    """fake(delay_s=..., respond=...) -> a FakeOpenAIServer, closed after the test."""
    servers = []

    def make(**kwargs) -> FakeOpenAIServer:
        servers.append(FakeOpenAIServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


# ------------------------------------------------------------------------------------------------ real server


@pytest.fixture(scope="module")
def real(tiny_text_model, tmp_path_factory):
    """``transformers serve`` of the tiny model through TeacherService; yields (service, base url, model)."""
    service, url, model = start_teacher_server(tiny_text_model, tmp_path_factory.mktemp("teacher") / "serve.log")
    try:
        yield service, url, model
    finally:
        service.stop()


def test_service_started_transformers_serve_and_a_completion_comes_back(real, tiny_text_model):
    service, url, model = real
    assert url == f"http://127.0.0.1:{service.port}/v1" and model == str(tiny_text_model.resolve())
    assert service.process is not None and service.process.poll() is None
    with client_of(url, model, timeout_s=60) as client:
        reply = client.chat(question(), max_tokens=64, temperature=0.0)
        assert reply.error is None, reply.error
        completion = reply.completion
        assert isinstance(completion.text, str) and completion.finish_reason in ("stop", "length")
        assert completion.prompt_tokens > 10 and 1 <= completion.completion_tokens <= 64
        assert reply.seconds > 0
        stats = client.stats()
    assert (stats["requests"], stats["failures"], stats["attempts"]) == (1, 0, 1)
    assert stats["prompt_tokens"] == completion.prompt_tokens
    assert stats["completion_tokens"] == completion.completion_tokens
    assert 0 < stats["busy_s"] <= reply.seconds


def test_small_max_tokens_is_a_truncated_completion(real):
    _, url, model = real
    with client_of(url, model, timeout_s=60) as client:
        reply = client.chat(question(), max_tokens=3, temperature=1.0)
        assert reply.error is None, reply.error
        assert reply.completion.finish_reason == "length" and reply.completion.truncated
        assert reply.completion.completion_tokens == 3
        assert client.stats()["truncated"] == 1


def test_thinking_switch_reaches_the_chat_template(real):
    """Qwen3's template closes an empty think block in the prompt when enable_thinking is false."""
    _, url, model = real
    with client_of(url, model, timeout_s=60) as client:
        prompt_tokens = {}
        for thinking in (None, True, False):
            reply = client.chat(question(), max_tokens=2, temperature=0.0, thinking=thinking)
            assert reply.error is None, reply.error
            prompt_tokens[thinking] = reply.completion.prompt_tokens
    assert prompt_tokens[None] == prompt_tokens[True] < prompt_tokens[False]


def test_submitted_requests_all_come_back(real):
    _, url, model = real
    with client_of(url, model, timeout_s=60, max_concurrency=4) as client:
        futures = [client.submit(question(f"What is {i} + {i}?"), max_tokens=8, temperature=1.0) for i in range(6)]
        done, pending = wait(futures, timeout=120)
        assert not pending
        replies = [f.result() for f in futures]
        assert all(r.error is None and isinstance(r.completion, Completion) for r in replies)
        assert client.stats()["requests"] == 6


def test_served_reply_keeps_the_reasoning(real):
    """transformers serve splits a reply at </think> and drops the reasoning from its JSON; the run's server
    (transformers_serve.py) puts it back, and the client joins it to the answer as the teacher wrote it."""
    _, url, model = real
    with client_of(url, model, timeout_s=60) as client:
        reply = client.chat(question(), max_tokens=48, temperature=0.0, thinking=True)
    assert reply.error is None, reply.error
    text = reply.completion.text
    assert text.startswith("<think>") and "</think>" in text and len(text.split("</think>", 1)[0]) > len("<think>")


# ------------------------------------------------------------------------------------------------ request shape


def test_request_body_one_choice_and_the_thinking_switch(fake):
    server = fake()
    with client_of(server.url, "teacher-27b") as client:
        for thinking in (None, True, False):
            reply = client.chat(question(), max_tokens=12, temperature=0.7, top_p=0.9, thinking=thinking)
            assert reply.error is None
    assert reply.completion == Completion("<think>2 plus 3</think>\\boxed{5}", "stop", 11, 7)
    plain, on, off = server.bodies
    assert plain["model"] == "teacher-27b" and plain["messages"] == question()
    assert (plain["max_tokens"], plain["temperature"], plain["top_p"]) == (12, 0.7, 0.9)
    assert "n" not in plain and "chat_template_kwargs" not in plain
    assert on["chat_template_kwargs"] == {"enable_thinking": True}
    assert off["chat_template_kwargs"] == {"enable_thinking": False}


def test_api_key_comes_from_the_environment(fake, monkeypatch):
    server = fake()
    monkeypatch.delenv("ZPPO_TEACHER_API_KEY", raising=False)
    client_of(server.url).chat(question(), max_tokens=1, temperature=0.0)
    monkeypatch.setenv("ZPPO_TEST_TEACHER_KEY", "s3cret")
    client_of(server.url, api_key_env="ZPPO_TEST_TEACHER_KEY").chat(question(), max_tokens=1, temperature=0.0)
    assert [h["authorization"] for h in server.headers] == ["Bearer EMPTY", "Bearer s3cret"]


def test_images_are_sent_as_data_urls_or_omitted(fake):
    server = fake()
    messages = [{"role": "user", "content": "<image>How many circles?"}]
    client = client_of(server.url)
    assert client.chat(messages, images=[{"bytes": PNG}], max_tokens=1, temperature=0.0).error is None
    text_only = client_of(server.url, send_images=False)
    assert text_only.chat(messages, images=[{"bytes": PNG}], max_tokens=1, temperature=0.0).error is None
    with_image, without = server.bodies
    url = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert with_image["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": url}},
                                                    {"type": "text", "text": "How many circles?"}]
    assert without["messages"][0]["content"] == f"{IMAGE_OMITTED}How many circles?"
    assert (client.stats()["images_sent"], text_only.stats()["images_dropped"]) == (1, 1)


def test_reasoning_returned_apart_is_joined_back(fake):
    replies = iter([completion_body("\\boxed{4}", reasoning_content="2+2 is 4"),
                    completion_body("\\boxed{5}", reasoning="newer vLLM field"),
                    completion_body(None, finish_reason="length", reasoning_content="cut off")])
    server = fake(respond=lambda body: (200, next(replies)))
    client = client_of(server.url)
    texts = [client.chat(question(), max_tokens=4, temperature=0.0).completion.text for _ in range(3)]
    assert texts == ["<think>2+2 is 4</think>\\boxed{4}", "<think>newer vLLM field</think>\\boxed{5}",
                     "<think>cut off</think>"]
    assert join_reasoning({"content": "<think>a</think>b", "reasoning_content": None}) == "<think>a</think>b"
    in_answer = {"content": "\\boxed{1}", "reasoning": "use <think> tags"}  # a literal tag is not a think block
    assert join_reasoning(in_answer) == "<think>use <think> tags</think>\\boxed{1}"


def test_missing_usage_counts_zero_tokens(fake):
    body = completion_body()
    del body["usage"]
    reply = client_of(fake(respond=lambda _: (200, body)).url).chat(question(), max_tokens=4, temperature=0.0)
    assert (reply.completion.prompt_tokens, reply.completion.completion_tokens) == (0, 0)


# ------------------------------------------------------------------------------------------------ concurrency


def test_requests_in_flight_are_bounded_by_max_concurrency(fake):
    server = fake(delay_s=0.3)
    with client_of(server.url, max_concurrency=2) as client:
        futures = [client.submit(question(), max_tokens=1, temperature=0.0) for _ in range(6)]
        done, pending = wait(futures, timeout=30)
    assert not pending and all(f.result().error is None for f in futures)
    assert server.requests == 6 and server.max_active == 2


def test_busy_time_is_the_union_of_overlapping_requests(fake):
    server = fake(delay_s=0.5)
    client = client_of(server.url, max_concurrency=4)
    futures = [client.submit(question(), max_tokens=1, temperature=0.0) for _ in range(2)]
    replies = [f.result(timeout=30) for f in futures]
    busy = client.stats()["busy_s"]
    assert server.max_active == 2 and all(r.error is None for r in replies)
    assert sum(r.seconds for r in replies) >= 1.0  # each request took its 0.5 s ...
    assert 0.5 <= busy <= max(r.seconds for r in replies) + 0.05  # ... but together they kept it busy ~0.5 s
    client.chat(question(), max_tokens=1, temperature=0.0)  # a later, separate interval adds its own time
    assert client.stats()["busy_s"] >= busy + 0.5
    client.close()


# ------------------------------------------------------------------------------------------------ failures


def test_closed_port_is_a_connection_error_after_every_attempt():
    client = client_of(f"http://127.0.0.1:{closed_port()}", max_retries=2, timeout_s=5)
    reply = client.chat(question(), max_tokens=4, temperature=0.0)
    assert reply.completion is None and "connection failed" in reply.error and "3 attempts" in reply.error
    assert "\n" not in reply.error
    assert reply.seconds < 5  # refused at once: openai's backoff between the attempts, never the timeout
    assert (client.stats()["failures"], client.stats()["attempts"]) == (1, 3)


def test_a_server_that_never_answers_times_out():
    with SilentServer() as silent:
        client = client_of(silent.url, timeout_s=1, max_retries=0)
        reply = client.chat(question(), max_tokens=4, temperature=0.0)
    assert reply.completion is None and reply.error.startswith("timed out after 1 s")
    assert 0.9 <= reply.seconds < 4
    assert client.stats()["failures"] == 1


@pytest.mark.parametrize("status, payload, expected", [
    (200, b"not json at all", "malformed reply"),
    (200, {"object": "chat.completion"}, "malformed reply: no choices"),
    (200, {"choices": []}, "malformed reply: empty choices"),
    (200, {"choices": [{"index": 0, "finish_reason": "stop"}]}, "malformed reply: the choice has no message"),
    (400, {"error": {"message": "max_tokens is too large\nfor this model"}}, "HTTP 400: max_tokens is too large"),
    (500, {"error": {"message": "engine died"}}, "HTTP 500: engine died"),
], ids=["not-json", "no-choices", "empty-choices", "no-message", "http-400", "http-500"])
def test_bad_replies_are_errors_not_exceptions(fake, status, payload, expected):
    server = fake(respond=lambda body: (status, payload))
    client = client_of(server.url, max_retries=1)
    reply = client.chat(question(), max_tokens=4, temperature=0.0)
    assert reply.completion is None and reply.error.startswith(expected), reply.error
    assert "\n" not in reply.error and reply.seconds < 5
    retried = status >= 500  # openai retries 5xx (after its backoff), never a 200 or a 400
    assert server.requests == (2 if retried else 1) and client.stats()["failures"] == 1


def test_chat_never_raises_even_on_bad_input(fake):
    client = client_of(fake().url)
    reply = client.chat(None, max_tokens=4, temperature=0.0)
    assert isinstance(reply, Reply) and reply.completion is None and reply.error


def test_closed_client_refuses_new_work(fake):
    client = client_of(fake().url)
    client.close()
    with pytest.raises(RuntimeError):
        client.submit(question(), max_tokens=1, temperature=0.0)


# ------------------------------------------------------------------------------------------------ helpers, config


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


def test_any_base_url_form_becomes_the_v1_base():
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", "http://h:1/v1/chat/completions"):
        assert normalise_base_url(url) == "http://h:1/v1"
    for bad in ("h:1", "ftp://h", "", "http://"):
        with pytest.raises(ValueError):
            normalise_base_url(bad)


def test_client_config_defaults_and_hydra_node():
    cfg = TeacherClientConfig()
    assert (cfg.timeout_s, cfg.max_retries, cfg.max_concurrency, cfg.api_key_env, cfg.send_images) == (
        600.0, 2, 32, "ZPPO_TEACHER_API_KEY", True)
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.merge(omegaconf.OmegaConf.structured(TeacherClientConfig), {"timeout_s": 30})
    assert omegaconf.OmegaConf.to_object(node) == TeacherClientConfig(timeout_s=30.0)


@pytest.mark.parametrize("key, value", [
    ("timeout_s", 0), ("timeout_s", float("nan")), ("timeout_s", "60"), ("max_retries", -1), ("max_retries", 1.5),
    ("max_concurrency", 0), ("max_concurrency", True), ("api_key_env", ""), ("send_images", 1),
])
def test_client_config_errors_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^zppo\.teacher\.client\.{key}="):
        TeacherClientConfig(**{key: value})


# ------------------------------------------------------------------------------------------------ service


def test_service_commands_for_each_engine(tmp_path, monkeypatch):
    model = tmp_path / "ckpt"
    model.mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = TeacherServerConfig(model="ckpt", engine="transformers", port=8123, extra_args=["--dtype", "float32"])
    service = TeacherService(cfg, tmp_path / "log")
    command = service.command()
    assert command[:4] == [sys.executable, "-m", "recipe.zppo.teacher.transformers_serve", "serve"]
    assert command[4:] == ["--host", "127.0.0.1", "--port", "8123", "--device", "cpu", str(model),
                           "--dtype", "float32"]  # a local model path is made absolute (the server runs elsewhere)
    env = service.environment()
    assert env["HF_HUB_OFFLINE"] == "1" and "OMP_NUM_THREADS" in env

    cfg = TeacherServerConfig(model="Qwen/Qwen3.5-27B", engine="vllm", host="0.0.0.0", devices="6,7",
                              extra_args=["--tensor-parallel-size", "2"])
    service = TeacherService(cfg, tmp_path / "log")
    command = service.command()
    port = service.port
    assert 0 < port < 65536 and service.command() == command  # one free port, picked once
    assert os.path.basename(command[0]) == "vllm"
    assert command[1:] == ["serve", "Qwen/Qwen3.5-27B", "--host", "0.0.0.0", "--port", str(port),
                           "--served-model-name", "Qwen/Qwen3.5-27B", "--tensor-parallel-size", "2"]
    assert service.environment()["CUDA_VISIBLE_DEVICES"] == "6,7"

    auto = TeacherService(TeacherServerConfig(model="m"), tmp_path / "log")
    monkeypatch.setattr(service_module, "vllm_available", lambda: False)
    assert auto.engine == "transformers"
    monkeypatch.setattr(service_module, "vllm_available", lambda: True)
    assert auto.engine == "vllm"
    with pytest.raises(ValueError, match=r"^zppo\.teacher\.server\.model is empty"):
        TeacherService(TeacherServerConfig(), tmp_path / "log").command()


@pytest.mark.parametrize("key, value", [
    ("engine", "sglang"), ("port", 70000), ("port", -1), ("url", "teacher:8000"), ("extra_args", "--x"),
    ("startup_timeout_s", 0), ("host", ""),
])
def test_server_config_errors_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^zppo\.teacher\.server\.{key}="):
        TeacherServerConfig(**{key: value})


def test_server_config_is_a_hydra_node():
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.merge(omegaconf.OmegaConf.structured(TeacherServerConfig),
                                     {"model": "m", "extra_args": ["--a"]})
    cfg = omegaconf.OmegaConf.to_object(node)
    assert cfg.extra_args == ["--a"] and type(cfg.extra_args) is list and cfg.configured


def test_bad_model_path_fails_with_one_line_and_the_log(tmp_path):
    missing = tmp_path / "no-such-model"
    service = TeacherService(TeacherServerConfig(model=str(missing), engine="transformers", startup_timeout_s=120),
                             tmp_path / "serve.log")
    started = time.monotonic()
    with pytest.raises(RuntimeError) as error:
        service.start()
    assert time.monotonic() - started < 100  # the process exits; the start-up timeout is never waited
    first, *rest = str(error.value).splitlines()
    assert "transformers teacher server exited with code" in first and str(tmp_path / "serve.log") in first
    assert "no-such-model" in first and rest[0] == "--- log tail ---"
    assert service.process is None


def test_startup_timeout_stops_the_process(tmp_path, monkeypatch):
    service = TeacherService(TeacherServerConfig(model="m", engine="transformers", startup_timeout_s=1),
                             tmp_path / "serve.log")
    monkeypatch.setattr(service, "command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not answer .* within 1 s"):
        service.start()
    assert time.monotonic() - started < 20 and service.process is None


def test_external_url_is_used_as_it_is(fake, tmp_path):
    server = fake(model="served-teacher")
    named = TeacherService(TeacherServerConfig(url=server.url + "/v1/", model="teacher"), tmp_path / "log")
    assert named.start() == (server.url + "/v1", "teacher") and named.process is None
    asked = TeacherService(TeacherServerConfig(url=server.url), tmp_path / "log")
    assert asked.start() == (server.url + "/v1", "served-teacher")  # the name from /v1/models
    nobody = TeacherService(TeacherServerConfig(url=f"http://127.0.0.1:{closed_port()}"), tmp_path / "log")
    with pytest.raises(RuntimeError, match=r"^zppo\.teacher\.server\.url=.*no OpenAI-compatible server"):
        nobody.start()


def test_stop_kills_the_server(real):
    """Last test: stops the module's server."""
    service, url, model = real
    proc = service.process
    port = service.port
    service.stop()
    assert proc.poll() is not None and service.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its process group is left
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    service.stop()  # idempotent
    reply = client_of(url, model, max_retries=0).chat(question(), max_tokens=2, temperature=0.0)
    assert reply.error.startswith("connection failed")


def test_reasoning_patch_adds_the_field_once():
    from transformers.cli.serving.chat_completion import ChatCompletionHandler

    from recipe.zppo.teacher.transformers_serve import REASONING_KEY, keep_reasoning_in_replies

    keep_reasoning_in_replies()
    patched = ChatCompletionHandler._build_completion
    keep_reasoning_in_replies()  # idempotent
    assert ChatCompletionHandler._build_completion is patched
    reply = patched(None, "id-1", " \\boxed{5}", "m", finish_reason="stop", reasoning_content="2 + 3 = 5")
    assert reply["choices"][0]["message"][REASONING_KEY] == "2 + 3 = 5"
    assert reply["choices"][0]["message"]["content"] == " \\boxed{5}"
    plain = patched(None, "id-2", "hello", "m", finish_reason="stop")
    assert REASONING_KEY not in plain["choices"][0]["message"]
