"""A minimal OpenAI-compatible chat-completions server for CPU tests and demos (the GPU teacher is ``vllm serve``).

    python -m recipe.zppo.teacher_server --model PATH [--host 127.0.0.1] [--port 8000] [--max-tokens N] [--seed S]

Endpoints:
- ``POST /v1/chat/completions``: ``messages`` -> the model's chat template with ``add_generation_prompt`` (extra
  template arguments from ``chat_template_kwargs``, as vLLM) -> Hugging Face ``generate`` with ``temperature``
  (0: greedy), ``top_p``, ``top_k``, ``max_tokens`` (capped by ``--max-tokens``), ``n`` and ``seed``; the reply has
  OpenAI's shape (id, object, created, model, choices[{index, message{role, content}, finish_reason}], usage).
  Text only: an image part of a message becomes the text ``[image omitted]``. No reasoning parser: the think
  block stays in ``content``, as vLLM without ``--reasoning-parser``.
- ``GET /v1/models``, ``GET /health``, and ``GET /stats`` (requests served, for tests).

``model`` in a request may be omitted; any other name than the served one (``--served-model-name``, default the
``--model`` argument) is a 404, as in vLLM. Bad JSON or missing/invalid fields give HTTP 400 with an OpenAI-style
error body. Requests are accepted concurrently (``ThreadingHTTPServer``); ``generate`` calls run one at a time.
Prints ``teacher server ready on http://HOST:PORT`` (the real port with ``--port 0``) once listening.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMAGE_OMITTED = "[image omitted]"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_N = 16


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(message: str, status: int, param: str | None = None, code: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def flatten_content(content, index: int) -> str:
    """A message's content as text: a string, or the text parts of a list (images -> ``[image omitted]``)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or a list of parts", param="messages")
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") in ("image_url", "image", "input_image"):
            texts.append(IMAGE_OMITTED)
        else:
            raise BadRequest(f"messages[{index}].content has an unsupported part {str(part)[:80]}", param="messages")
    return "".join(texts)


class Generator:
    """The model, its tokenizer and a lock: one ``generate`` at a time."""

    def __init__(self, model_path: str, max_tokens: int, seed: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
        self.model.to("cpu").eval()
        self.max_tokens = max_tokens
        self.lock = threading.Lock()
        torch.manual_seed(seed)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    def __call__(self, messages: list[dict], *, n: int, max_tokens: int, temperature: float, top_p: float,
                 top_k: int | None, seed: int | None, template_kwargs: dict) -> tuple[list[tuple[str, str]], int, int]:
        """Returns ([(text, finish_reason)] * n, prompt tokens, completion tokens)."""
        torch = self.torch
        try:
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                        **template_kwargs)
        except Exception as error:  # a template that rejects these messages is the client's problem
            raise BadRequest(f"cannot apply the chat template: {error}", param="messages") from None
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        prompt_len = inputs["input_ids"].shape[1]
        max_new = min(max_tokens, self.max_tokens)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and prompt_len + max_new > limit:
            raise BadRequest(f"prompt of {prompt_len} tokens plus max_tokens={max_new} exceeds the model's "
                             f"context of {limit} tokens", param="messages", code="context_length_exceeded")
        greedy = temperature == 0  # n identical greedy answers, as vLLM gives
        sampling = {"do_sample": False} if greedy else {
            "do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": max(top_k or 0, 0)}
        with self.lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**inputs, max_new_tokens=max_new, num_return_sequences=1 if greedy else n,
                                      pad_token_id=self.pad_id, **sampling)
        if greedy:
            out = out.expand(n, -1)
        choices, completion_tokens = [], 0
        for row in out[:, prompt_len:].tolist():
            length, finish = len(row), "length"
            for i, tok in enumerate(row):
                if tok in self.eos_ids:
                    length, finish = i, "stop"
                    break
            completion_tokens += length + (finish == "stop")
            choices.append((self.tokenizer.decode(row[:length], skip_special_tokens=True), finish))
        return choices, prompt_len, completion_tokens


def parse_request(body: dict, served: str, default_max_tokens: int) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model", served)
    if model is not None and model != served:
        raise BadRequest(f"The model `{model}` does not exist.", status=404, param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages is required: a non-empty list of {role, content}", param="messages")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a string role", param="messages")
        clean.append({"role": message["role"], "content": flatten_content(message.get("content"), i)})

    def number(key, default, low, high, integer=False):
        value = body.get(key, default)
        if value is None:
            value = default
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or not low <= value <= high:
            raise BadRequest(f"{key} must be a{'n integer' if integer else ' number'} in [{low}, {high}], "
                             f"got {value!r}", param=key)
        return value

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    body = {**body, "max_tokens": max_tokens}
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise BadRequest("chat_template_kwargs must be an object", param="chat_template_kwargs")
    return {
        "messages": clean,
        "n": number("n", 1, 1, MAX_N, integer=True),
        "max_tokens": number("max_tokens", default_max_tokens, 1, 1 << 20, integer=True),
        "temperature": float(number("temperature", 1.0, 0.0, 100.0)),
        "top_p": float(number("top_p", 1.0, 1e-6, 1.0)),
        "top_k": number("top_k", 0, -1, 1 << 20, integer=True),
        "seed": body.get("seed") if isinstance(body.get("seed"), int) else None,
        "template_kwargs": kwargs,
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "zppo-teacher/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.server.verbose:
            sys.stderr.write("teacher server: " + (fmt % args) + "\n")

    def send_json(self, status: int, payload: dict):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self.send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": self.server.served_name, "object": "model", "created": self.server.started,
                 "owned_by": "zppo", "max_model_len": self.server.context}]})
        elif path == "/stats":
            with self.server.stats_lock:
                self.send_json(200, dict(self.server.stats))
        else:
            self.send_json(404, error_body(f"no route GET {path}", 404))

    def do_POST(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        server = self.server
        with server.stats_lock:
            server.stats["requests"] += 1
        try:
            if path != "/v1/chat/completions":
                raise BadRequest(f"no route POST {path}", status=404)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise BadRequest("Content-Length is not a number") from None
            if length <= 0:
                raise BadRequest("empty request body: send a JSON object")
            if length > MAX_REQUEST_BYTES:
                raise BadRequest(f"request body larger than {MAX_REQUEST_BYTES} bytes", status=413)
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as error:
                raise BadRequest(f"the request body is not valid JSON: {error}") from None
            request = parse_request(body, server.served_name, server.generate.max_tokens)
            choices, prompt_tokens, completion_tokens = server.generate(**request)
        except BadRequest as error:
            self.close_connection = True  # the body may be unread
            with server.stats_lock:
                server.stats["errors"] += 1
            self.send_json(error.status, error_body(str(error), error.status, error.param, error.code))
            return
        except Exception as error:  # a bug or an out-of-memory: the client sees a 500, the server lives on
            with server.stats_lock:
                server.stats["errors"] += 1
            self.send_json(500, error_body(f"generation failed: {type(error).__name__}: {error}", 500))
            return
        with server.stats_lock:
            server.stats["completions"] += 1
            server.stats["choices"] += len(choices)
        self.send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": server.served_name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                        for i, (text, finish) in enumerate(choices)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--served-model-name", default=None, help="name clients use (default: --model as given)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="cap on max_tokens (and its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    generate = Generator(args.model, args.max_tokens, args.seed)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.generate = generate
    server.served_name = args.served_model_name or args.model
    server.context = getattr(generate.model.config, "max_position_embeddings", None)
    server.started = int(time.time())
    server.verbose = args.verbose
    server.stats = {"requests": 0, "completions": 0, "choices": 0, "errors": 0}
    server.stats_lock = threading.Lock()
    host, port = server.server_address[:2]
    print(f"teacher server ready on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
