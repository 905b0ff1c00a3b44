"""A real HTTP server on 127.0.0.1 answering the OpenAI-compatible completions API from a transformers
model, with the request and reply shapes of vLLM's server (vllm/entrypoints/openai/completion/protocol.py
and serving.py): ``/v1/models``; ``/v1/completions`` with ``prompt`` as text or token ids, ``max_tokens``,
``stop``, ``temperature`` 0, ``echo``, ``logprobs`` (``tokens``, ``token_logprobs``, ``top_logprobs``,
``text_offset``), ``prompt_logprobs`` (``{token id: {logprob, rank, decoded_token}}``, the first null),
``return_token_ids`` and ``return_tokens_as_token_ids``.

It is the test double of vLLM for the served engine's tests: its own greedy decoding, one sequence at a
time, independent of the plugin's local engine (so equal results mean something). ``vllm=False`` makes it
a plain OpenAI-compatible server (no ``prompt_logprobs``). ``faults`` queues misbehaviour for the next
completions requests: ``"500"``, ``"429:<retry-after seconds>"``, ``"slow:<seconds>"``, ``"drop"``
(close the connection without a reply), ``"not-json"``, ``"no-logprobs"``, ``"short-logprobs"``,
``"no-choices"``. ``replies`` queues canned ``(status, JSON)`` replies (recorded vLLM shapes) for the
next completions requests, ``models_reply`` replaces the ``/v1/models`` reply.

Run as a script, it serves a model directory (an ``--kick-export`` variant, say) until stopped, which is
how the README's deployment loop can be walked on a machine without vLLM:
``python tests/served_server.py DIR [port] [served name]``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Model:
    """Greedy decoding and prompt log-probs of a causal LM, one sequence at a time."""

    def __init__(self, model, tokenizer, name: str, max_model_len: int = 1024):
        self.model, self.tokenizer, self.name, self.max_model_len = model.eval(), tokenizer, name, max_model_len
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos = {e for e in [*eos, tokenizer.eos_token_id] if e is not None}
        self.lock = threading.Lock()  # one forward pass at a time

    def decode(self, ids, skip_special: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special)

    def prompt_logprobs(self, ids: list[int], top: int):
        """[None, (logprob, rank, [(id, logprob)] top) for every later prompt token]."""
        import torch

        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        found = [None]
        for position in range(1, len(ids)):
            row = logprobs[position - 1]
            value = row[ids[position]]
            rank = int((row > value).sum().item()) + 1
            best = torch.topk(row, top) if top > 0 else None
            found.append(
                (value.item(), rank, [] if best is None else list(zip(best.indices.tolist(), best.values.tolist())))
            )
        return found

    def generate(self, ids: list[int], max_tokens: int, stop: list[str], top: int | None):
        """(new ids, text, finish_reason, stop_reason, [(id, logprob, top)] per new token)."""
        import torch

        new, steps, past = [], [], None
        step = torch.tensor([ids])
        finish, stop_reason, text = "length", None, ""
        with self.lock, torch.inference_mode():
            for _ in range(max_tokens):
                out = self.model(input_ids=step, cache=past, use_cache=True)
                past = getattr(out, "cache", None) or out.past_key_values
                row = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                token = int(row.argmax().item())
                if token in self.eos:
                    finish = "stop"
                    break
                new.append(token)
                if top is not None:
                    best = torch.topk(row, max(top, 1))
                    steps.append((token, row[token].item(), list(zip(best.indices.tolist(), best.values.tolist()))))
                text = self.decode(new)
                hit = [(text.find(s), s) for s in stop if s and s in text]
                if hit:
                    where, stop_reason = min(hit)
                    text, finish = text[:where], "stop"
                    break
                step = torch.tensor([[token]])
        return new, text, finish, stop_reason, steps


class Server:
    """``with Server(model) as server: server.base_url`` -> ``http://127.0.0.1:<port>/v1``."""

    def __init__(self, model: Model, vllm: bool = True, port: int = 0):
        self.model, self.vllm = model, vllm
        self.faults: list[str] = []
        self.replies: list[tuple[int, dict]] = []
        self.models_reply: dict | None = None
        self.requests: list[dict] = []  # every completions body received, in order
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def next_reply(self) -> tuple[int, dict] | None:
        with self._lock:
            return self.replies.pop(0) if self.replies else None

    def record(self, body: dict) -> None:
        with self._lock:
            self.requests.append(body)

    # --- the API ----------------------------------------------------------------------------------

    def models(self) -> dict:
        if self.models_reply is not None:
            return self.models_reply
        m = self.model
        return {
            "object": "list",
            "data": [
                {
                    "id": m.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "vllm",
                    "root": m.name,
                    "parent": None,
                    "max_model_len": m.max_model_len,
                }
            ],
        }

    def complete(self, body: dict) -> tuple[int, dict]:
        m = self.model
        if body.get("model") not in (None, m.name):
            return 404, _error(f"The model `{body.get('model')}` does not exist.", "NotFoundError", 404)
        if body.get("temperature") not in (None, 0, 0.0):
            return 400, _error("this test server decodes greedily only (temperature 0)", "BadRequestError", 400)
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            ids = m.tokenizer(prompt, add_special_tokens=body.get("add_special_tokens", True))["input_ids"]
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and t >= 0 for t in prompt):
            ids = list(prompt)
        else:
            return 400, _error("Either prompt or prompt_embeds must be provided and non-empty.", "BadRequestError", 400)
        max_tokens = body.get("max_tokens")
        max_tokens = 16 if max_tokens is None else int(max_tokens)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        echo, logprobs = bool(body.get("echo")), body.get("logprobs")
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        want_prompt = body.get("prompt_logprobs")
        if want_prompt is None and echo:
            want_prompt = logprobs
        prompt_lps = m.prompt_logprobs(ids, want_prompt or 0) if want_prompt is not None else None
        # echo with max_tokens 0 returns the prompt alone (vLLM runs one step and drops it)
        new, text, finish, stop_reason, steps = (
            m.generate(ids, max_tokens, stop, logprobs) if max_tokens else ([], "", "length", None, [])
        )
        choice = {
            "index": 0,
            "text": (m.decode(ids) if echo else "") + text,
            "logprobs": None,
            "finish_reason": finish,
            "stop_reason": stop_reason,
        }
        if logprobs is not None:
            shown = []
            if echo:
                shown += [(t, None if e is None else (e[0], e[2])) for t, e in zip(ids, prompt_lps)]
            shown += [(t, (lp, top)) for t, lp, top in steps]
            choice["logprobs"] = self._logprobs(shown, logprobs, as_ids)
        if self.vllm:
            choice["prompt_logprobs"] = (
                None
                if prompt_lps is None
                else [None if e is None else self._prompt_entry(t, e) for t, e in zip(ids, prompt_lps)]
            )
            if body.get("return_token_ids"):
                choice["prompt_token_ids"], choice["token_ids"] = ids, new
        usage = {"prompt_tokens": len(ids), "completion_tokens": len(new), "total_tokens": len(ids) + len(new)}
        return 200, {
            "id": "cmpl-test",
            "object": "text_completion",
            "created": int(time.time()),
            "model": m.name,
            "choices": [choice],
            "usage": usage,
        }

    def _token(self, token_id: int, as_ids: bool) -> str:
        return f"token_id:{token_id}" if as_ids else self.model.decode([token_id], skip_special=False)

    def _logprobs(self, shown, top: int, as_ids: bool) -> dict:
        """OpenAI ``logprobs``: text_offset accumulates the token strings' lengths, as vLLM does."""
        out = {"text_offset": [], "token_logprobs": [], "tokens": [], "top_logprobs": []}
        offset = 0
        for token_id, entry in shown:
            token = self._token(token_id, as_ids)
            out["tokens"].append(token)
            out["text_offset"].append(offset)
            offset += len(token)
            if entry is None:
                out["token_logprobs"].append(None)
                out["top_logprobs"].append(None)
                continue
            value, best = entry
            out["token_logprobs"].append(max(value, -9999.0))
            tops = {token: max(value, -9999.0)}
            for k, (i, v) in enumerate(best):
                if k < top:
                    tops.setdefault(self._token(i, as_ids), max(v, -9999.0))
            out["top_logprobs"].append(tops)
        return out

    def _prompt_entry(self, token_id: int, entry) -> dict:
        value, rank, best = entry
        found = {str(token_id): {"logprob": value, "rank": rank, "decoded_token": self._token(token_id, False)}}
        for k, (i, v) in enumerate(best):
            found.setdefault(str(i), {"logprob": v, "rank": k + 1, "decoded_token": self._token(i, False)})
        return found


def _error(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, json.dumps(server.models()).encode())
            else:
                self._send(404, json.dumps(_error("Not Found", "NotFoundError", 404)).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/completions":
                self._send(404, json.dumps(_error("Not Found", "NotFoundError", 404)).encode())
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, json.dumps(_error("invalid JSON", "BadRequestError", 400)).encode())
                return
            server.record(body)
            fault = server.next_fault()
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "500":
                self._send(
                    500, json.dumps(_error("EngineCore encountered an issue", "InternalServerError", 500)).encode()
                )
                return
            if fault and fault.startswith("429"):
                wait = fault.partition(":")[2] or "0"
                self._send(
                    429, json.dumps(_error("Too Many Requests", "RateLimitError", 429)).encode(), {"Retry-After": wait}
                )
                return
            if fault and fault.startswith("slow:"):
                time.sleep(float(fault.partition(":")[2]))
            if fault == "not-json":
                self._send(200, b"<html>502 Bad Gateway</html>")
                return
            status, reply = server.next_reply() or server.complete(body)
            if fault == "no-choices":
                reply = {k: v for k, v in reply.items() if k != "choices"}
            elif fault in ("no-logprobs", "short-logprobs") and status == 200:
                choice = reply["choices"][0]
                choice.pop("prompt_logprobs", None)
                if fault == "no-logprobs":
                    choice["logprobs"] = None
                elif choice.get("logprobs"):
                    choice["logprobs"] = {k: v[:1] for k, v in choice["logprobs"].items()}
            try:
                self._send(status, json.dumps(reply).encode())
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

    return Handler


if __name__ == "__main__":  # python tests/served_server.py DIR [port] [served name]: serve until stopped
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    name = sys.argv[3] if len(sys.argv) > 3 else directory
    weights = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    with Server(Model(weights, AutoTokenizer.from_pretrained(directory), name), port=port) as served:
        print(f"serving {directory} as {name!r} at {served.base_url}", flush=True)
        try:
            while True:
                time.sleep(60)
                print(f"completions requests so far: {len(served.requests)}", flush=True)
        except KeyboardInterrupt:
            pass
