"""A fake OpenAI-compatible server on 127.0.0.1 (stdlib ``http.server``) for the openai backend's tests.

It answers ``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions`` like vLLM
does (``n`` choices, per-choice ``logprobs.tokens``), deterministically: choice j of a request is a
function of (prompt, seed + j) only, so a run with faults must end with exactly the samples of a
run without them. For "a+b=" prompts the answer is right or off by one, so pass@1 means something.

``faults`` is a list consumed one per completion request: "429" / "500" (with a 10 ms
``retry-after-ms``), "timeout" (sleeps past the client's timeout, then answers), "malformed"
(a 200 whose body is not JSON), "short" (one choice too few), "reset" (drops the connection);
``always`` makes every request fail that way.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_ID = "fake-adder"
_SUM = re.compile(r"(\d+)\+(\d+)=$")


def fake_text(prompt: str, seed: int | None) -> str:
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
    match = _SUM.search(prompt)
    if match is None:
        return f"The answer is {digest[0] % 10}"
    total = int(match.group(1)) + int(match.group(2))
    return str(total if digest[0] % 2 == 0 else total + 1)


class FakeServer:
    def __init__(self, *, api_key: str | None = None, faults: list[str] | None = None, always: str | None = None,
                 delay: float = 0.0, sleep: float = 2.0):
        self.api_key, self.faults, self.always = api_key, list(faults or []), always
        self.delay, self.sleep = delay, sleep  # delay: per request; sleep: the "timeout" fault's stall
        self.requests: list[dict] = []  # completion request bodies, in arrival order (faulted ones too)
        self.answered: list[dict] = []  # bodies answered with a valid completion
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next_fault(self) -> str | None:
        with self.lock:
            if self.always:
                return self.always
            return self.faults.pop(0) if self.faults else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) and closed the connection

            def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
                self._send(status, json.dumps(data).encode(), headers)

            def _authorised(self) -> bool:
                if server.api_key is None or self.headers.get("authorization") == f"Bearer {server.api_key}":
                    return True
                self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                return False

            def do_GET(self):
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/models":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                self._json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "fake"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if not self._authorised():
                    return
                chat = self.path == "/v1/chat/completions"
                if self.path not in ("/v1/completions", "/v1/chat/completions"):
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                with server.lock:
                    server.requests.append(body)
                if body.get("model") != MODEL_ID:
                    return self._json(404, {"error": {"message": f"model {body.get('model')} does not exist"}})
                fault = server._next_fault()
                if server.delay:
                    time.sleep(server.delay)
                if fault in ("429", "500"):
                    return self._json(int(fault), {"error": {"message": f"fake {fault}"}}, {"retry-after-ms": "10"})
                if fault == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [{"text": "12')
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "timeout":
                    time.sleep(server.sleep)
                n = int(body.get("n", 1))
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                seed = body.get("seed")
                choices = []
                for j in range(n - (1 if fault == "short" else 0)):
                    text = fake_text(prompt, None if seed is None else seed + j)
                    tokens = list(text) + ["</s>"]  # one token per character, plus the EOS that stopped it
                    if chat:
                        choices.append({"index": j, "message": {"role": "assistant", "content": text},
                                        "logprobs": {"content": [{"token": t, "logprob": -0.5, "top_logprobs": []} for t in tokens]},
                                        "finish_reason": "stop"})
                    else:
                        choices.append({"index": j, "text": text, "finish_reason": "stop",
                                        "logprobs": {"tokens": tokens, "token_logprobs": [-0.5] * len(tokens),
                                                     "top_logprobs": None, "text_offset": list(range(len(tokens)))}})
                used = sum(len(text) + 1 for text in (fake_text(prompt, None if seed is None else seed + j) for j in range(len(choices))))
                with server.lock:
                    server.answered.append(body)
                self._json(200, {"id": "cmpl-fake", "object": "chat.completion" if chat else "text_completion",
                                 "created": 0, "model": MODEL_ID, "choices": choices,
                                 "usage": {"prompt_tokens": len(prompt), "completion_tokens": used,
                                           "total_tokens": len(prompt) + used}})

        return Handler
