"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the judge tests.

What it does with a request is written into the judged answer: ``<<plan:500,500,valid>>`` means the
first request carrying this exact prompt gets HTTP 500, the second too, the third and later a valid
verdict. The counter is per prompt, so concurrent requests (and the two orders of a pairwise item) each
follow their own plan (a re-ask, which adds turns after the first user message, continues the plan of
that message). Steps:

- ``valid``    a fair verdict: the reference (the text ``REFERENCE``) 9, the judged answer 6, in the format
               the prompt asks for (two scores, four lines, a tuple, or ``[[rating]]``);
- ``biased``   a position-biased verdict: Assistant 1 gets 9, Assistant 2 gets 6, whoever they are;
- ``hash``     each answer a score from 1 to 10 fixed by its text (a judge that tells answers apart);
- ``garbage``  a reply without scores;
- ``500``      HTTP 500;  ``429``  HTTP 429 with ``Retry-After: 7``;  ``401``  HTTP 401;
- ``echo``     HTTP 400 whose message repeats the request's Authorization header (a careless server);
- ``slow``     a valid verdict after 2 s (longer than the tests' client timeout);
- ``drop``     the connection closed without an answer;
- ``html``     HTTP 200 with an HTML page (a proxy's login or error page), not JSON;
- ``notchat``  HTTP 200 with JSON that is not a chat completion (no ``choices``);
- ``nonjson``  HTTP 200 declared ``application/json`` whose body is not JSON (a truncated reply);
- ``nochoices`` HTTP 200, a chat completion with ``choices: []``.
- ``prefers``  a judge that knows the bundled reference answers: the question's own reference gets 9, any
               other answer 4, in either position (it always prefers the reference);
- ``logprobs`` the ``valid`` verdict with the log-probabilities of its tokens (``logprobs.content``, asked or
               not): each digit is a token whose ``top_logprobs`` give the digit 0.6, the digit below 0.3 and
               the digit above 0.1 (a score d from 2 to 8 reads as d - 0.2; 9 gives 8 the other 0.4: 8.6);
               a "0" after a "1" (a 10) has "0" 0.8; every other token is certain.

A prompt without a plan follows ``Server(default=...)`` ("valid" unless told), except the prompts of the
discrimination check (judge/discrimination.py: a reference answer against a degraded copy of one, recognised
by the answers' words, all from the bundled references), which follow ``Server(check=...)`` ("prefers"
unless told): a scripted judge passes the check unless a test says otherwise. Run as a script, it serves
until stopped: ``python tests/judge_server.py [default plan] [port]``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLAN = re.compile(r"<<plan:([\w,]+)>>")
HTML = "<html><head><title>Sign in</title></head>\n<body>The proxy needs you to sign in.</body></html>"


ANSWER = re.compile(r"\[The Start of Assistant(?: \d)?'s Answer\]\n(.*?)\n*\[The End of Assistant", re.DOTALL)


def hashed(answer: str) -> int:
    """A score from 1 to 10 that depends on the answer's text only (step ``hash``)."""
    return 1 + int(hashlib.sha256(answer.encode()).hexdigest(), 16) % 10


@functools.lru_cache(maxsize=1)
def references() -> dict[str, str]:
    """Every bundled question (as the judge prompts quote it) -> its reference answer."""
    from pytest_kick.judge.protocols import strip_highlights
    from pytest_kick.tasks.data import bundled_dir
    from pytest_kick.tasks.instruction import load_mtbench, load_vicuna
    from pytest_kick.tasks.summarization import BUNDLED, load_stories

    found = {}
    for story in load_stories(bundled_dir() / BUNDLED):
        found[story.prompt] = found[strip_highlights(story.prompt)] = story.answers[0]
    for load in (load_vicuna, load_mtbench):
        for item in load(bundled_dir())[0]:
            if item.references:
                found[item.turns[0]] = item.references[0]
    return found


def reference_for(user: str) -> str | None:
    """The reference answer of the question the prompt quotes (the longest quoted question)."""
    quoted = [q for q in references() if q in user]
    return references()[max(quoted, key=len)] if quoted else None


def is_check(user: str) -> bool:
    """Whether a prompt is one of the discrimination check's: every answer made of a reference's words."""
    answers = ANSWER.findall(user)
    words = [set(r.split()) for r in references().values()]
    return bool(answers) and all(a.split() and any(set(a.split()) <= w for w in words) for a in answers)


def preferring(system: str, user: str) -> str:
    """Step ``prefers``: the question's reference 9, anything else 4."""
    reference = reference_for(user)
    scores = [9 if a == reference else 4 for a in ANSWER.findall(user)] or [4]
    text = system + "\n" + user
    if "[[rating]]" in text:
        return f"Rated against what I know.\nRating: [[{scores[0]}]]"
    first, second = scores[0], scores[-1]
    if "four lines" in text:
        return "\n".join([f"{first} {second}"] * 4) + "\nOne of them is the reference."
    if "Python tuple" in text:
        return f"Checking the answers.\nSo the scores are ({first}, {second})."
    return f"{first} {second}\nOne of them is the reference."


def with_logprobs(content: str) -> dict:
    """Step ``logprobs``: ``logprobs.content`` for ``content``, each digit a token with its alternatives."""
    tokens = re.findall(r"\d|[^\d]+", content)
    found = []
    for n, token in enumerate(tokens):
        if token == "0" and n and tokens[n - 1] == "1":
            top = [("0", 0.8), ("\n", 0.2)]
        elif token.isdigit() and 1 < int(token) < 9:
            top = [(token, 0.6), (str(int(token) - 1), 0.3), (str(int(token) + 1), 0.1)]
        elif token.isdigit():  # 1 (not a 10's) or 9: its one neighbour gets 0.4
            top = [(token, 0.6), (str(int(token) + 1 if token == "1" else 8), 0.4)]
        else:
            top = [(token, 1.0)]
        alternatives = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top]
        found.append(
            {"token": token, "logprob": alternatives[0]["logprob"], "bytes": None, "top_logprobs": alternatives}
        )
    return {"content": found}


def verdict(system: str, user: str, biased: bool, by_hash: bool = False) -> str:
    text = system + "\n" + user
    model_first = user.find("<<plan") < user.find("REFERENCE") if "REFERENCE" in user else True
    first, second = (9, 6) if biased or not model_first else (6, 9)
    answers = ANSWER.findall(user)
    if by_hash and answers:
        first = hashed(answers[0])
        second = hashed(answers[1]) if len(answers) > 1 else first
    if "[[rating]]" in text:
        return f"The answer is partly right.\nRating: [[{first if by_hash else 6}]]"
    if "four lines" in text:
        return "\n".join([f"{first} {second}"] * 4) + "\nBoth summaries are fine."
    if "Python tuple" in text:
        return f"Solving it first: x = 2.\nSo the scores are ({first}, {second})."
    return f"{first} {second}\nAssistant {1 if first > second else 2} is better."


class Server:
    def __init__(self, slow_seconds: float = 2.0, default: str = "valid", port: int = 0, check: str = "prefers"):
        self.slow_seconds = slow_seconds
        self.default = default  # the plan of a prompt without <<plan:...>> (e.g. a real model's answer)
        self.check = check  # the plan of the discrimination check's prompts
        self.asked_logprobs: list = []  # each request's (logprobs, top_logprobs)
        self.requests = 0
        self.authorizations: set[str] = set()
        self.inflight = 0
        self.max_inflight = 0
        self.steps: list[str] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def step(self, user: str) -> str:
        found = PLAN.search(user)
        plan = (found.group(1) if found else self.check if is_check(user) else self.default).split(",")
        with self._lock:
            n = self._seen.get(user, 0)
            self._seen[user] = n + 1
            step = plan[min(n, len(plan) - 1)]
            self.steps.append(step)
            return step

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict | str, headers: dict | None = None):
                html = isinstance(body, str)
                data = body.encode() if html else json.dumps(body).encode()
                self._send_raw(status, data, "text/html; charset=utf-8" if html else "application/json", headers)

            def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests += 1
                    server.authorizations.add(self.headers.get("Authorization", ""))
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server.inflight -= 1

            def _answer(self, body: dict):
                messages = body["messages"]
                system = next((m["content"] for m in messages if m["role"] == "system"), "")
                user = next(m["content"] for m in messages if m["role"] == "user")  # a re-ask adds turns
                step = server.step(user)
                with server._lock:
                    server.asked_logprobs.append((body.get("logprobs"), body.get("top_logprobs")))
                time.sleep(0.05)  # long enough for concurrent requests to overlap
                if step == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if step in ("500", "429", "401", "echo"):
                    status = 400 if step == "echo" else int(step)
                    message = f"bad request from {self.headers.get('Authorization')}" if step == "echo" else "nope"
                    headers = {"Retry-After": "7"} if step == "429" else {}
                    return self._send(status, {"error": {"message": message, "type": "test", "code": None}}, headers)
                if step == "html":
                    return self._send(200, HTML)
                if step == "notchat":
                    return self._send(200, {"status": "queued", "id": "job-1"})
                if step == "nonjson":
                    return self._send_raw(200, b'{"id": "chatcmpl-test", "choices": [{"mess', "application/json")
                if step == "nochoices":
                    return self._send(200, {"id": "chatcmpl-test", "object": "chat.completion", "choices": []})
                if step == "slow":
                    time.sleep(server.slow_seconds)
                if step == "garbage":
                    content = "no scores here, sorry"
                elif step == "prefers":
                    content = preferring(system, user)
                else:
                    content = verdict(system, user, step == "biased", step == "hash")
                logprobs = with_logprobs(content) if step == "logprobs" else None
                try:
                    self._send(
                        200,
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content},
                                    **({"logprobs": logprobs} if logprobs else {}),
                                }
                            ],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                        },
                    )
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        return Handler


if __name__ == "__main__":  # python tests/judge_server.py [default plan] [port]: serve until stopped
    import sys

    served = Server(
        default=sys.argv[1] if len(sys.argv) > 1 else "valid", port=int(sys.argv[2]) if len(sys.argv) > 2 else 0
    ).start()
    print(served.url, flush=True)
    try:
        while True:
            time.sleep(60)
            print(f"requests {served.requests}", flush=True)
    except KeyboardInterrupt:
        served.stop()
