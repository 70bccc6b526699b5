"""The ``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, ...) through the official ``openai`` client.

- One request per prompt with ``n=`` samples and the prompt's own seed
  (``prompt_seed(params.seed, i)``, the rule of the in-process backends), so a
  sample depends on (server model, prompt, params, index) only: which server of
  several answered, in which order, and resumption change nothing. vLLM seeds the
  j-th of a request's n samples with seed + j, as in-process.
- Completions endpoint by default, with the prompt text exactly as the loop
  rendered it (the chat template, if on, applied with the tokenizer of ``--model``);
  the chat endpoint (``endpoint="chat"``) sends the raw user text as a message and
  lets the server apply its own template.
- Several base URLs: every server gets ``concurrency`` worker threads pulling prompts
  from one queue (data parallel; a faster server simply takes more prompts).
- Retries: the client's own (429, 408/409, 5xx, timeouts, connection errors; exponential
  backoff, Retry-After honoured) with ``max_retries``; a malformed answer (bad JSON,
  wrong number of choices, unknown finish reason) is retried here with the same budget.
  When a request fails for good, the other requests in flight finish and the finished
  prompts are handed back in ``PartialSample``, so the loop stores them: no sample is lost.
- Token counts: ``logprobs=0`` makes the server list each choice's sampled tokens
  (the count includes the EOS that stopped it, like the in-process vllm backend).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

from ttrl_bench.errors import BackendError, UsageError
from ttrl_bench.sampling.base import LoadOptions, PartialSample, check_params, prompt_seed, replicate_greedy
from ttrl_bench.types import Completion, SamplingParams

ENDPOINTS = ("completions", "chat")
NO_KEY = "EMPTY"  # what vLLM's docs pass when the server was started without --api-key
MALFORMED_BACKOFF = 0.5  # seconds before the first retry of a malformed answer; doubles, capped at 8


@dataclass(frozen=True)
class ServerOptions:
    """How to reach the servers. ``api_key`` None: $OPENAI_API_KEY, else no key."""

    base_urls: tuple[str, ...]
    model_id: str | None = None  # None: the one model the servers serve
    api_key: str | None = field(default=None, repr=False)
    endpoint: str = "completions"
    concurrency: int = 8  # requests in flight per server
    max_retries: int = 5
    timeout: float = 600.0  # seconds per request

    def validate(self) -> None:
        if not self.base_urls:
            raise UsageError("--base-url: required with --backend openai (e.g. http://HOST:8000/v1; repeat it for several servers)")
        for url in self.base_urls:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise UsageError(f"--base-url: {url!r} is not an http(s) URL; expected e.g. http://HOST:8000/v1")
        if len(set(self.base_urls)) != len(self.base_urls):
            raise UsageError("--base-url: the same URL is given twice; expected distinct servers")
        if self.endpoint not in ENDPOINTS:
            raise UsageError(f"--endpoint: {self.endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
        checks = [(self.concurrency >= 1, "--max-concurrency", "an integer >= 1"),
                  (self.max_retries >= 0, "--max-retries", "an integer >= 0"),
                  (self.timeout > 0, "--request-timeout", "a positive number of seconds")]
        for ok, flag, expected in checks:
            if not ok:
                raise UsageError(f"{flag}: must be {expected}")

    def key(self) -> str:
        import os

        return self.api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY

    def client(self, url: str, *, max_retries: int | None = None, timeout: float | None = None):
        import openai

        return openai.OpenAI(base_url=url, api_key=self.key(), max_retries=self.max_retries if max_retries is None else max_retries,
                             timeout=self.timeout if timeout is None else timeout)


def resolve_model_id(options: ServerOptions) -> str:
    """Check every server (reachable, key accepted, model served) and return the model id to ask for.

    Called before anything is written, so a wrong URL, key or model id ends in one line and exit 2.
    """
    import openai

    options.validate()
    served_by: dict[str, list[str]] = {}
    for url in options.base_urls:
        client = options.client(url, max_retries=min(options.max_retries, 2), timeout=min(options.timeout, 30.0))
        try:
            served_by[url] = [m.id for m in client.models.list()]
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise UsageError(f"--api-key: the server at {url} refused the key ({_describe(exc)}); "
                             "expected the key the server was started with (or $OPENAI_API_KEY)") from None
        except openai.APIConnectionError as exc:
            raise UsageError(f"--base-url {url}: cannot connect ({_describe(exc)}); expected a running "
                             "OpenAI-compatible server, e.g. http://HOST:8000/v1") from None
        except openai.APIStatusError as exc:
            raise UsageError(f"--base-url {url}: GET /models answered {_describe(exc)}; expected the API root "
                             "of an OpenAI-compatible server (usually ending in /v1)") from None
        except (openai.APIError, ValueError) as exc:  # a 200 that is not a model list
            raise UsageError(f"--base-url {url}: GET /models did not return a model list ({_describe(exc)}); "
                             "expected an OpenAI-compatible server") from None
    if options.model_id is None:
        first = served_by[options.base_urls[0]]
        if len(first) != 1:
            raise UsageError(f"--model-id: required, {options.base_urls[0]} serves {len(first)} models "
                             f"({', '.join(first) or 'none'})")
        model_id = first[0]
    else:
        model_id = options.model_id
    for url, served in served_by.items():
        if model_id not in served:
            raise UsageError(f"--model-id: {model_id!r} is not served by {url}; it serves: {', '.join(served) or 'nothing'}")
    return model_id


class OpenAISampler:
    backend = "openai"

    def __init__(self, model_dir: Path | None, options: ServerOptions, load: LoadOptions = LoadOptions()):
        for flag, value, default in (("--dtype", load.dtype, "auto"), ("--device", load.device, None),
                                     ("--batch-size", load.batch_size, None)):
            if value != default:
                raise UsageError(f"{flag}: not used by --backend openai (the server decides); use --max-concurrency "
                                 "for the requests in flight")
        self.options = options
        self.model_id = resolve_model_id(options)
        self.takes_messages = options.endpoint == "chat"
        self.tokenizer = None
        self._strip_bos: str | None = None
        if model_dir is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=load.trust_remote_code)
            bos = self.tokenizer.bos_token
            # The server tokenises the text with add_special_tokens; a rendered chat template that already
            # starts with BOS would get a second one. Strip it when the tokenizer adds BOS by itself.
            if bos and self.tokenizer("x")["input_ids"][:1] == [self.tokenizer.bos_token_id]:
                self._strip_bos = bos
        self._clients = [(url, options.client(url)) for url in options.base_urls]

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids as the local tokenizer makes them; without one (no --model), a stand-in of about one
        id per 4 characters, which serves only to size the chunks of questions sent at once."""
        if self.tokenizer is None:
            return [[0] * max(1, len(p) // 4) for p in prompts]
        return [self.tokenizer(p)["input_ids"] for p in prompts]

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(prompts)):
            jobs.put(i)
        results: dict[int, list[Completion]] = {}
        failures: list[BaseException] = []
        stop = threading.Event()

        def work(url: str, client: Any) -> None:
            while not stop.is_set():
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = self._request(url, client, prompts[i], params, i)
                except BaseException as exc:  # re-raised in the caller's thread below
                    failures.append(exc)
                    stop.set()
                    return

        # interleaved, so that the servers start with equal shares of the queue
        threads = [threading.Thread(target=work, args=(url, client), daemon=True)
                   for _ in range(self.options.concurrency) for url, client in self._clients]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            stop.set()  # requests in flight finish (bounded by the timeout); their results are kept
            for t in threads:
                t.join()
            raise PartialSample(dict(results), KeyboardInterrupt()) from None
        if failures:
            raise PartialSample(dict(results), failures[0])
        ordered = [results[i] for i in range(len(prompts))]
        return replicate_greedy(ordered, params.n) if params.greedy else ordered

    def _request(self, url: str, client: Any, prompt: str, params: SamplingParams, index: int) -> list[Completion]:
        import openai

        per_prompt = 1 if params.greedy else params.n
        kwargs: dict[str, Any] = dict(model=self.model_id, n=per_prompt, temperature=params.temperature,
                                      top_p=params.top_p, max_tokens=params.max_new_tokens)
        if not params.greedy:
            kwargs["seed"] = prompt_seed(params.seed, index)
        if params.top_k > 0:
            kwargs["extra_body"] = {"top_k": params.top_k}  # vLLM/SGLang extension; not sent when off
        if self.takes_messages:
            call = client.chat.completions.create
            kwargs.update(messages=[{"role": "user", "content": prompt}], logprobs=True)
        else:
            call = client.completions.create
            if self._strip_bos and prompt.startswith(self._strip_bos):
                prompt = prompt[len(self._strip_bos):]
            kwargs.update(prompt=prompt, logprobs=0)
        where = f"--base-url {url}"
        delay = MALFORMED_BACKOFF
        for attempt in range(self.options.max_retries + 1):
            try:
                response = call(**kwargs)  # the client retries 429/5xx/timeouts itself
                return self._completions(response, per_prompt)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise UsageError(f"--api-key: the server at {url} refused the key ({_describe(exc)})") from None
            except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as exc:
                raise UsageError(f"{where}: the server refused the request for prompt {index} ({_describe(exc)}); "
                                 "expected sampling settings and a prompt length the served model accepts") from None
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                raise BackendError(f"{where}: the request for prompt {index} failed after {self.options.max_retries} "
                                   f"retries ({_describe(exc)})") from exc
            except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError) as exc:
                # a 200 whose body is not a completion (JSONDecodeError is a ValueError): retried here
                if attempt == self.options.max_retries:
                    raise BackendError(f"{where}: malformed answers for prompt {index} after {self.options.max_retries} "
                                       f"retries ({_describe(exc)})") from exc
                time.sleep(delay)
                delay = min(2 * delay, 8.0)
        raise AssertionError("unreachable")

    def _completions(self, response: Any, expected: int) -> list[Completion]:
        choices = sorted(response.choices, key=lambda c: c.index)
        if [c.index for c in choices] != list(range(expected)):
            raise ValueError(f"expected {expected} choices indexed 0..{expected - 1}, got indices {[c.index for c in choices]}")
        out = []
        for c in choices:
            if c.finish_reason not in ("stop", "length"):
                raise ValueError(f"finish_reason {c.finish_reason!r}; expected stop or length")
            if self.takes_messages:
                text = c.message.content
                tokens = c.logprobs.content if c.logprobs is not None else None
            else:
                text = c.text
                tokens = c.logprobs.tokens if c.logprobs is not None else None
            if not isinstance(text, str):
                raise ValueError(f"choice {c.index} has no text")
            if tokens is None:
                if expected != 1 or response.usage is None:
                    raise ValueError("no per-choice token list (logprobs) and no usage to count tokens from")
                num_tokens = response.usage.completion_tokens
            else:
                num_tokens = len(tokens)
            out.append(Completion(text=text, num_tokens=int(num_tokens), finish_reason=c.finish_reason))
        return out

    def close(self) -> None:
        for _, client in self._clients:
            client.close()


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"{status} {text}" if status else f"{type(exc).__name__}: {text}"

