"""`lgemma serve`: models kept loaded behind an OpenAI-compatible HTTP API (Starlette + uvicorn).

Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (both with
`"stream": true` as server-sent events in OpenAI's chunk format, ending with `data: [DONE]`) and
`POST /v1/lgemma/translate` (the chunking and length rules of `lgemma translate`).

What a request maps to (the CLI's code paths, so a server answer equals a local one):

* chat completions with one user message run `ask` (the same prompt, answer-language instruction
  and engine call); several messages run `chat`'s conversation prompt; a system message replaces
  the answer-language instruction and joins the first user turn (Gemma has no system role);
* completions encode the prompt as it is (no chat template, no instruction);
* OpenAI fields: `model`, `max_tokens` (or `max_completion_tokens`), `temperature`, `top_p`,
  `seed`, `stop` (up to 4 strings: the text is cut before the first one), `n` (lgemma's reasoning
  paths: choices come most confident first), `stream`; fields that do not apply are ignored;
* the `lgemma` request object: `mode`, `thoughts`, `soft_top_p`, `lens` (top tokens per thought
  of the logit lens, 0 = off), `lang` (answer language, ja | en);
* every response carries an `lgemma` object: exactly what `lgemma ask --json` prints (paths with
  confidences, thoughts, languages, settings with the seed, timings, model and device) plus
  `server` (queue wait, model load).

Serving rules: models load on first use and stay loaded (least recently used unloaded past
`max_models`, idle ones after `idle_unload_s`); one generation at a time per model, at most
`queue` more waiting, beyond that 503 with `Retry-After`; bodies over `max_body` bytes get 413;
malformed JSON 400, bad values 422, an unknown model 404, a missing or wrong API key 401 (the key
is compared in constant time and never logged). Errors use OpenAI's `{"error": {...}}` shape.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

MAX_STOP = 4
LGEMMA_FIELDS = ("mode", "thoughts", "soft_top_p", "lens", "lang")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


class Cancelled(Exception):
    """Raised from the token callback when the client went away: ends the generation early."""


@dataclass
class ServerConfig:
    models: list[str] = field(default_factory=list)  # allowed references; empty: any local model
    default_model: str | None = None
    api_key: str | None = None
    queue: int = 4
    max_body: int = 1 << 20
    max_models: int = 2
    idle_unload_s: float | None = None
    idle_exit_s: float | None = None  # exit after this long without a request (keep-alive servers)
    device: str | None = None
    dtype: str | None = None
    quantize: str | None = None
    retry_after_s: int = 2


@dataclass
class Slot:
    name: str
    loaded: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0  # admitted requests not finished (generating, waiting or loading)
    last_used: float = field(default_factory=time.monotonic)
    load_seconds: float = 0.0


class ModelPool:
    """Loaded models by name, with admission control per model and LRU unloading."""

    def __init__(self, config: ServerConfig, loader: Any = None):
        self.config = config
        self.slots: OrderedDict[str, Slot] = OrderedDict()
        self._loader = loader or _default_loader(config)
        self.last_activity = time.monotonic()  # the last admission or release, for --idle-exit

    def resolve(self, name: str | None) -> str:
        name = name or self.config.default_model
        if not name:
            raise HTTPError(422, "no model given and the server has no default model")
        if self.config.models and name not in self.config.models:
            raise HTTPError(
                404, f"model {name!r} is not served here (served: {', '.join(self.config.models)})", "not_found_error"
            )
        if not self.config.models and name != self.config.default_model:
            from .store import looks_like_path

            if looks_like_path(name):  # a client must not make the server open any directory on its disk
                raise HTTPError(404, f"model {name!r}: directories are served only when named with --model")
        return name

    def admit(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            slot = self.slots[name] = Slot(name)
        if slot.pending >= 1 + self.config.queue:
            raise HTTPError(
                503,
                f"model {name!r} is busy: {slot.pending} requests ahead (queue {self.config.queue}); retry later",
                "server_busy",
                {"Retry-After": str(self.config.retry_after_s)},
            )
        slot.pending += 1
        self.slots.move_to_end(name)
        self.last_activity = time.monotonic()
        return slot

    def release(self, slot: Slot) -> None:
        slot.pending -= 1
        slot.last_used = self.last_activity = time.monotonic()

    def idle_seconds(self) -> float:
        """How long no request has been admitted, waiting or running (0 while one is)."""
        if any(slot.pending for slot in self.slots.values()):
            return 0.0
        return time.monotonic() - self.last_activity

    async def ensure_loaded(self, slot: Slot) -> float:
        """Load the slot's model if needed (one load per model at a time); the seconds it took."""
        async with slot.load_lock:
            if slot.loaded is not None:
                return 0.0
            began = time.perf_counter()
            slot.loaded = await asyncio.to_thread(self._loader, slot.name)
            slot.load_seconds = time.perf_counter() - began
            self._evict(keep=slot.name)
            return slot.load_seconds

    def _evict(self, keep: str) -> None:
        loaded = [s for s in self.slots.values() if s.loaded is not None]
        for slot in loaded:  # least recently used first
            if len([s for s in self.slots.values() if s.loaded is not None]) <= self.config.max_models:
                break
            if slot.name != keep and slot.pending == 0:
                slot.loaded = None

    def unload_idle(self) -> list[str]:
        if not self.config.idle_unload_s:
            return []
        now, gone = time.monotonic(), []
        for slot in self.slots.values():
            if slot.loaded is not None and slot.pending == 0 and now - slot.last_used >= self.config.idle_unload_s:
                slot.loaded = None
                gone.append(slot.name)
        return gone


def load_for_serving(name: str, config: ServerConfig) -> Any:
    """Load a model as the server runs it (device, dtype and quantization by flag or config;
    quantized by the rule for many answers). Raises the project's errors."""
    from . import config as lg_config
    from .loading import load_model

    return load_model(
        name,
        device=lg_config.resolve("device", config.device, name),
        dtype=lg_config.resolve("dtype", config.dtype, name),
        quantize=lg_config.resolve("quantize", config.quantize, name),
        answer_tokens=None,  # a server answers many times: quantize by the same rule as chat
    )


def _default_loader(config: ServerConfig):
    def load(name: str) -> Any:
        from .errors import LgemmaError

        try:
            return load_for_serving(name, config)
        except LgemmaError as exc:
            status = 404 if exc.exit_code in (3, 7) else 500
            raise HTTPError(status, exc.message, "not_found_error" if status == 404 else "server_error") from None

    return load


# --- request parsing -------------------------------------------------------------------------------


def _number(body: dict, key: str, kind: type, low: float | None = None, high: float | None = None):
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise HTTPError(422, f"{key} must be {'a number' if kind is float else 'an integer'}, got {json.dumps(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise HTTPError(422, f"{key} {value} is out of range [{low}, {high}]")
    return kind(value)


def parse_settings(body: dict, model: str) -> tuple[Any, dict]:
    """Settings for the engine from an OpenAI body plus its `lgemma` object (config defaults
    fill what the request leaves open, as on the command line); and the extras (lang, stop, lens)."""
    from .errors import UsageError
    from .settings import build_settings

    ext = body.get("lgemma") or {}
    if not isinstance(ext, dict):
        raise HTTPError(422, "lgemma must be an object")
    unknown = sorted(set(ext) - set(LGEMMA_FIELDS))
    if unknown:
        raise HTTPError(422, f"unknown lgemma field(s) {unknown}: known {list(LGEMMA_FIELDS)}")
    max_tokens = _number(body, "max_completion_tokens", int, 1) or _number(body, "max_tokens", int, 1)
    mode = ext.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise HTTPError(422, "lgemma.mode must be a string")
    lang = ext.get("lang")
    if lang is not None and lang not in ("ja", "en"):
        raise HTTPError(422, f"lgemma.lang must be ja or en, got {json.dumps(lang)}")
    lens = _number(ext, "lens", int, 0, 20) or 0
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (
        not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop)
    ):
        raise HTTPError(422, f"stop must be a non-empty string or a list of at most {MAX_STOP} of them")
    fixed = {"lens_top": lens}
    soft_top_p = _number(ext, "soft_top_p", float, 0.0, 1.0)
    if soft_top_p is not None:
        fixed["soft_top_p"] = soft_top_p
    try:
        settings = build_settings(
            model=model,
            mode=mode,
            thoughts=_number(ext, "thoughts", int, 0),
            paths=_number(body, "n", int, 1),
            max_new_tokens=max_tokens,
            temperature=_number(body, "temperature", float, 0.0, 100.0),
            top_p=_number(body, "top_p", float, 0.0, 1.0),
            seed=_number(body, "seed", int, 0),
            **fixed,
        )
    except UsageError as exc:
        raise HTTPError(422, exc.message) from None
    return settings, {"lang": lang, "stop": stop or []}


def parse_messages(body: dict) -> tuple[str | None, list[dict[str, str]]]:
    """(system text, user/assistant turns ending with a user turn) of a chat body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(422, "messages must be a non-empty list")
    system, turns = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise HTTPError(422, f"messages[{i}] needs a role of system, user or assistant")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI's content parts: the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise HTTPError(422, f"messages[{i}].content must be text")
        if m["role"] in ("system", "developer"):
            system.append(content)
        else:
            turns.append({"role": m["role"], "content": content})
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise HTTPError(422, "the last message must be a non-empty user message")
    return ("\n\n".join(system) or None), turns


# --- generation -----------------------------------------------------------------------------------


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [text.find(s) for s in stops if s in text]
    return (text[: min(hits)], True) if hits else (text, False)


class DeltaStream:
    """Answer tokens of path 0 as text deltas (the CLI's TokenStream rule: never half a character,
    spaces at the ends wait), holding back what could still become a stop string."""

    def __init__(self, tokenizer: Any, stops: list[str], emit: Any):
        self.tokenizer, self.stops, self.emit = tokenizer, stops, emit
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False

    def __call__(self, path: int, token_id: int) -> None:
        if path != 0 or self.stopped:
            return
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).strip()
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return
        text, self.stopped = cut_at_stop(text, self.stops)
        if not self.stopped:  # keep back a tail that is the start of a stop string
            keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - keep].rstrip()  # trailing space waits, as in the CLI's stream
        if len(text) > len(self.sent):
            self.emit(text[len(self.sent) :])
            self.sent = text
        if self.stopped:
            raise Cancelled()


def run_chat(loaded: Any, system: str | None, turns: list[dict], settings: Any, lang: str | None, on_token: Any):
    from . import ask as ask_mod

    if len(turns) == 1:
        return ask_mod.ask(
            loaded, turns[0]["content"], settings, answer_language=lang, on_token=on_token, system=system
        )
    from .chat import Conversation

    conv = Conversation(loaded.tokenizer, messages=[dict(t) for t in turns[:-1]], answer_language=lang)
    ids = conv.prompt_ids(turns[-1]["content"], system=system)
    if not conv.templated:
        settings = replace(settings, stop_ids=tuple(settings.stop_ids) + conv.stop_ids())
    return ask_mod.ask_ids(loaded, turns[-1]["content"], ids, settings, answer_language=lang, on_token=on_token)


def run_completion(loaded: Any, prompt: str, settings: Any, on_token: Any):
    from . import ask as ask_mod

    ids = list(loaded.tokenizer(prompt, add_special_tokens=True)["input_ids"])
    return ask_mod.ask_ids(loaded, prompt, ids, settings, answer_language=None, on_token=on_token)


def result_data(result: Any, loaded: Any, extra: dict) -> dict:
    from .ask import model_identity

    data = result.to_dict()
    model_identity(data, loaded)
    data["server"] = extra
    return data


def choices_of(data: dict, stops: list[str], chat: bool) -> tuple[list[dict], int]:
    """OpenAI choices, most confident path first (choice 0 is the answer), and completion tokens."""
    order = sorted(range(len(data["paths"])), key=lambda i: (i != data["chosen_path"], -data["paths"][i]["confidence"]))
    choices, tokens = [], 0
    for index, i in enumerate(order):
        p = data["paths"][i]
        text = data["answer"] if i == data["chosen_path"] else p["text"]
        text, stopped = cut_at_stop(text, stops)
        tokens += p["num_tokens"]
        reason = "stop" if stopped or p["finished"] else "length"
        body = {"message": {"role": "assistant", "content": text}} if chat else {"text": text, "logprobs": None}
        choices.append({"index": index, **body, "finish_reason": reason, "lgemma_path": i})
    return choices, tokens


# --- the ASGI app ---------------------------------------------------------------------------------


def create_app(config: ServerConfig, loader: Any = None):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from .keepalive import PROBE_HEADER

    pool = ModelPool(config, loader)

    def error(exc: HTTPError) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": exc.message, "type": exc.kind, "param": None, "code": exc.status}},
            status_code=exc.status,
            headers=exc.headers,
        )

    def check_key(request: Request) -> None:
        if not config.api_key:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(token.encode(), config.api_key.encode()):
            raise HTTPError(401, "missing or wrong API key (send Authorization: Bearer KEY)", "authentication_error")

    async def read_body(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_body:
            raise HTTPError(413, f"request body of {declared} bytes is over the limit of {config.max_body}")
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > config.max_body:
                raise HTTPError(413, f"request body is over the limit of {config.max_body} bytes")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return body

    async def models(request: Request):
        try:
            check_key(request)
        except HTTPError as exc:
            return error(exc)
        # A keep-alive client asks this just before its request: the idle clock restarts, so the
        # server cannot reach --idle-exit between the two. `lgemma ps` probes without doing so.
        if request.headers.get(PROBE_HEADER) != "1":
            pool.last_activity = time.monotonic()
        names = config.models or _local_model_names()
        now = int(time.time())
        data = [
            {
                "id": n,
                "object": "model",
                "created": now,
                "owned_by": "lgemma",
                "lgemma": {"loaded": bool(pool.slots.get(n) and pool.slots[n].loaded is not None)},
            }
            for n in names
        ]
        return JSONResponse({"object": "list", "data": data})

    async def generate(request: Request, kind: str):
        try:
            check_key(request)
            body = await read_body(request)
            name = pool.resolve(body.get("model"))
            if kind == "chat":
                system, turns = parse_messages(body)
                prompt = None
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                    prompt = prompt[0]
                if not isinstance(prompt, str) or not prompt:
                    raise HTTPError(422, "prompt must be a non-empty string")
            settings, extra = parse_settings(body, name)
            stream = bool(body.get("stream"))
            slot = pool.admit(name)
        except HTTPError as exc:
            return error(exc)
        arrived = time.perf_counter()
        created = int(time.time())
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        obj = "chat.completion" if kind == "chat" else "text_completion"

        async def produce(on_token: Any):
            """Load, wait for the model, generate; returns (data, tokens). Releases the slot."""
            try:
                load_s = await pool.ensure_loaded(slot)
                async with slot.lock:
                    waited = time.perf_counter() - arrived - load_s
                    loaded = slot.loaded
                    from .settings import for_model

                    run_settings = for_model(settings, loaded.spec)

                    def work():
                        if kind == "chat":
                            return run_chat(loaded, system, turns, run_settings, extra["lang"], on_token)
                        return run_completion(loaded, prompt, run_settings, on_token)

                    result = await asyncio.to_thread(work)
                    info = {"queue_wait_s": round(max(0.0, waited), 4), "model_load_s": round(load_s, 4)}
                    return result_data(result, loaded, info), loaded
            finally:
                pool.release(slot)

        if not stream:
            try:
                data, _ = await produce(None)
            except HTTPError as exc:
                return error(exc)
            choices, tokens = choices_of(data, extra["stop"], kind == "chat")
            prompt_tokens = len(data["prompt_token_ids"])
            return JSONResponse(
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": name,
                    "choices": choices,
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": tokens,
                        "total_tokens": prompt_tokens + tokens,
                    },
                    "lgemma": data,
                }
            )

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()

        def chunk(delta: dict | None, reason: str | None = None, index: int = 0, **more) -> str:
            if kind == "chat":
                choice = {"index": index, "delta": delta or {}, "finish_reason": reason}
            else:
                choice = {
                    "index": index,
                    "text": (delta or {}).get("content", ""),
                    "finish_reason": reason,
                    "logprobs": None,
                }
            payload = {
                "id": rid,
                "object": obj + ".chunk" if kind == "chat" else obj,
                "created": created,
                "model": name,
            }
            payload.update(choices=[choice], **more)
            return "data: " + json.dumps(payload, ensure_ascii=False) + "\n\n"

        async def events():
            state: dict = {}

            def emit(text: str) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, ("delta", text))

            def on_token(path: int, token_id: int) -> None:
                if gone.is_set():
                    raise Cancelled()
                state["stream"](path, token_id)

            async def runner():
                try:
                    await queue.put(("done", await produce(on_token)))
                except Cancelled:
                    await queue.put(("cancelled", None))
                except HTTPError as exc:
                    await queue.put(("error", exc))
                except Exception as exc:  # noqa: BLE001 - reported to the client as a server error
                    await queue.put(("error", HTTPError(500, f"{type(exc).__name__}: {exc}", "server_error")))

            task = None
            try:
                if kind == "chat":
                    yield chunk({"role": "assistant", "content": ""})
                # the tokenizer is known once the model is loaded: the stream object is made lazily
                state["stream"] = _LazyStream(pool, slot, extra["stop"], emit)
                task = asyncio.create_task(runner())
                stopped_early = False
                while True:
                    what, value = await queue.get()
                    if what == "delta":
                        yield chunk({"content": value})
                    elif what == "error":
                        yield (
                            "data: "
                            + json.dumps(
                                {"error": {"message": value.message, "type": value.kind, "code": value.status}}
                            )
                            + "\n\n"
                        )
                        break
                    elif what == "cancelled":  # a stop string was reached: generation ended early
                        stopped_early = True
                        data = None
                        break
                    else:
                        data, loaded = value
                        stream_obj = state["stream"].inner
                        choices, tokens = choices_of(data, extra["stop"], kind == "chat")
                        if settings.paths == 1:
                            final = choices[0]["message"]["content"] if kind == "chat" else choices[0]["text"]
                            sent = stream_obj.sent if stream_obj is not None else ""
                            if final.startswith(sent) and len(final) > len(sent):
                                yield chunk({"content": final[len(sent) :]})
                        else:  # several paths: each choice in one piece
                            for c in choices:
                                text = c["message"]["content"] if kind == "chat" else c["text"]
                                yield chunk({"content": text}, index=c["index"])
                        for c in choices:
                            yield chunk(
                                {},
                                c["finish_reason"],
                                index=c["index"],
                                **({"lgemma": data} if c["index"] == 0 else {}),
                            )
                        break
                if stopped_early:
                    yield chunk({}, "stop", lgemma=None)
                yield "data: [DONE]\n\n"
            finally:
                gone.set()
                if task is not None and not task.done():
                    try:
                        await asyncio.shield(task)
                    except BaseException:  # noqa: BLE001 - the client is gone; nothing to report
                        pass

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def chat_completions(request: Request):
        return await generate(request, "chat")

    async def completions(request: Request):
        return await generate(request, "completion")

    async def keep_alive(request: Request):
        """Set how long this server stays up without a request (a keep-alive server's client asks
        for what its run was given: the latest run's keep-alive wins, as in ollama)."""
        try:
            check_key(request)
            body = await read_body(request)
            seconds = _number(body, "seconds", float, 0.001)
            if seconds is None:
                raise HTTPError(422, "seconds is required")
            if not config.idle_exit_s:
                raise HTTPError(409, "this server was not started with --idle-exit: it stays until stopped")
        except HTTPError as exc:
            return error(exc)
        config.idle_exit_s = seconds
        pool.last_activity = time.monotonic()
        on_change = getattr(app.state, "on_keep_alive", None)
        if on_change is not None:
            on_change(seconds)
        return JSONResponse({"idle_exit_s": seconds})

    async def translate(request: Request):
        try:
            check_key(request)
            body = await read_body(request)
            name = pool.resolve(body.get("model"))
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                raise HTTPError(422, "text must be a non-empty string")
            target = body.get("to")
            source = body.get("from") or "auto"
            if target is not None and target not in ("ja", "en"):
                raise HTTPError(422, "to must be ja or en")
            if source not in ("auto", "ja", "en"):
                raise HTTPError(422, "from must be auto, ja or en")
            chunk_tokens = _number(body, "max_chunk_tokens", int, 8)
            batch = _number(body, "batch_size", int, 1, 64) or 8
            settings, _ = parse_settings(body, name)
            length_set = body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None
            slot = pool.admit(name)
        except HTTPError as exc:
            return error(exc)
        arrived = time.perf_counter()
        try:
            load_s = await pool.ensure_loaded(slot)
            async with slot.lock:
                waited = time.perf_counter() - arrived - load_s
                loaded = slot.loaded

                def work():
                    from .settings import for_model
                    from .translation import plan, resolve_languages, translate_segments, with_length_rule

                    src, tgt, detected = resolve_languages(text, source, target)
                    segments = plan(loaded, text, tgt, chunk_tokens)
                    s = with_length_rule(
                        for_model(settings, loaded.spec), loaded.tokenizer, segments, max_new_tokens_set=length_set
                    )
                    lines = list(translate_segments(loaded, segments, src, tgt, s, batch_size=batch))
                    return src, tgt, detected, s, lines

                src, tgt, detected, used, lines = await asyncio.to_thread(work)
        except HTTPError as exc:
            return error(exc)
        except Exception as exc:  # noqa: BLE001
            from .errors import LgemmaError

            if isinstance(exc, LgemmaError):
                return error(HTTPError(422 if exc.exit_code == 2 else 500, exc.message))
            raise
        finally:
            pool.release(slot)
        return JSONResponse(
            {
                "object": "lgemma.translation",
                "model": name,
                "text": "\n".join(line.text for line in lines),
                "lines": [line.text for line in lines],
                "from": src,
                "to": tgt,
                "detected": {"code": detected.code, "probability": detected.probability},
                "chunks": [c.to_dict("-") for line in lines for c in line.chunks],
                "seed": used.seed,
                "mode": used.mode,
                "server": {"queue_wait_s": round(max(0.0, waited), 4), "model_load_s": round(load_s, 4)},
            }
        )

    async def idle_task():
        while True:
            limits = [s for s in (config.idle_unload_s, config.idle_exit_s) if s]
            await asyncio.sleep(min(30.0, max(0.25, min(limits) / 4)))
            pool.unload_idle()
            if config.idle_exit_s and pool.idle_seconds() >= config.idle_exit_s:
                request_exit = getattr(app.state, "request_exit", None)
                if request_exit is not None:
                    request_exit()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(idle_task()) if config.idle_unload_s or config.idle_exit_s else None
        yield
        if task is not None:
            task.cancel()

    app = Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/lgemma/translate", translate, methods=["POST"]),
            Route("/v1/lgemma/keep_alive", keep_alive, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.pool = pool
    return app


class _LazyStream:
    """A DeltaStream made on the first token, when the slot's tokenizer is loaded."""

    def __init__(self, pool: ModelPool, slot: Slot, stops: list[str], emit: Any):
        self.slot, self.stops, self.emit = slot, stops, emit
        self.inner: DeltaStream | None = None

    def __call__(self, path: int, token_id: int) -> None:
        if self.inner is None:
            self.inner = DeltaStream(self.slot.loaded.tokenizer, self.stops, self.emit)
        self.inner(path, token_id)


def _local_model_names() -> list[str]:
    from .models_registry import list_models

    return [m.name for m in list_models()]
