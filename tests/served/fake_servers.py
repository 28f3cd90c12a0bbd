"""In-process servers (httpx transports) for what a real server cannot be made to do: drifting token ids, dropped
images, missing fields, overload, timeouts, nonsense; and the SGLang and OpenAI schemas, which cannot run here.
The SGLang fake scores with a real transformers model, so its exactness is tested too."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time

import httpx
import numpy as np
import torch

WORDS = ["<s>", "a", " red", " circle", " blue", " square", "?", " what"]


def _word_ids(text: str) -> list[int]:
    ids, rest = [], text
    while rest:
        match = max((w for w in WORDS[1:] if rest.startswith(w)), key=len, default=None)
        if match is None:
            raise ValueError(f"fake tokenizer cannot read {rest!r}")
        ids.append(WORDS.index(match))
        rest = rest[len(match):]
    return ids


def _has_image(messages) -> bool:
    return any(isinstance(m.get("content"), list) and any(c.get("type") == "image_url" for c in m["content"])
               for m in messages)


class FakeVLLM:
    """vLLM's fields, with canned log-probabilities (-1 - position/10) and knobs for misbehaviour."""

    def __init__(self, *, drift=False, drop_image=False, omit=(), fail=None, fail_times=0, delay_s=0.0,
                 nonsense=False):
        self.drift, self.drop_image, self.omit = drift, drop_image, set(omit)
        self.fail, self.fail_times, self.delay_s, self.nonsense = fail, fail_times, delay_s, nonsense
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "tiny"}]})
        body = json.loads(request.content or b"{}")
        if path == "/tokenize":
            return httpx.Response(200, json={"tokens": _word_ids(body["prompt"])})
        if path == "/detokenize":
            return httpx.Response(200, json={"prompt": "".join(WORDS[i] for i in body["tokens"])})
        with self.lock:
            self.calls += 1
            call = self.calls
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.fail and call <= self.fail_times:
                if self.fail == "timeout":
                    raise httpx.ReadTimeout("timed out", request=request)
                return httpx.Response(self.fail, json={"error": {"message": "busy"}}, headers={"Retry-After": "0"})
            if self.nonsense:
                return httpx.Response(200, text="<html>gateway</html>")
            return httpx.Response(200, json=self.chat(body))
        finally:
            with self.lock:
                self.in_flight -= 1

    def chat(self, body: dict) -> dict:
        messages = body["messages"]
        image = _has_image(messages) and not self.drop_image
        prompt = [0] * 4 + ([9] * 6 if image else [])
        if body.get("continue_final_message"):
            answer = _word_ids(messages[-1]["content"])
            if self.drift:
                answer = answer[::-1]
            ids = prompt + answer
            entries = [None] + [{str(t): {"logprob": -1.0 - i / 10, "rank": 1, "decoded_token": ""}}
                                for i, t in enumerate(ids[1:])]
            out = {"choices": [{"message": {"content": ""}, "finish_reason": "length", "token_ids": [1]}],
                   "prompt_token_ids": ids, "prompt_logprobs": entries}
        else:
            out = {"choices": [{"message": {"content": "a red circle"}, "finish_reason": "stop",
                                "token_ids": [1, 2, 3]}], "prompt_token_ids": prompt}
        for name in self.omit:
            out.pop(name, None)
        return out


class FakeOpenAI:
    """OpenAI chat completions with top-k log-probabilities of the first generated token: the answer "a red
    circle", where " circle" is never among the top k (it scores 0) and the others have p = 0.5, 0.25."""

    def __init__(self):
        self.bodies = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "gpt-test"}]})
        if request.url.path != "/v1/chat/completions":
            return httpx.Response(404, json={"error": {"message": "not found"}})
        body = json.loads(request.content)
        self.bodies.append(body)
        if body["max_tokens"] > 1:  # generation
            content = [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in ["a", " red", " circle"]]
            return httpx.Response(200, json={"choices": [{"message": {"content": "a red circle"},
                                                          "finish_reason": "stop", "logprobs": {"content": content}}]})
        prefix = body["messages"][-1]["content"] if body["messages"][-1]["role"] == "assistant" else ""
        top = {"": [("a", 0.5), ("the", 0.3)], "a": [("red", 0.25), ("blue", 0.2)]}.get(prefix, [("square", 0.9)])
        top_logprobs = [{"token": t, "logprob": math.log(p)} for t, p in top]
        return httpx.Response(200, json={"choices": [{"message": {"content": top[0][0]}, "logprobs": {
            "content": [{"token": top[0][0], "logprob": top_logprobs[0]["logprob"], "top_logprobs": top_logprobs}]}}]})


class FakeSGLang:
    """SGLang's native /generate, scoring with a real transformers model (`session`): `input_token_logprobs` are
    the model's log-probabilities of the templated text with the image, as SGLang computes them."""

    def __init__(self, session):
        self.session = session

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/get_server_info":
            return httpx.Response(200, json={"version": "0.5.0"})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "tiny-sglang"}]})
        if request.url.path == "/version":
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        from PIL import Image

        data = body["image_data"][0].split(",", 1)[1]
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        inputs = self.session.adapter.encode([image], body["text"])
        with torch.inference_mode():
            logits = self.session.model(**inputs).logits[0].float()
        ids = inputs["input_ids"][0].tolist()
        logp = torch.log_softmax(logits, -1)
        rows = [[None, ids[0], None]] + [[float(logp[i - 1, ids[i]]), ids[i], None] for i in range(1, len(ids))]
        if body["sampling_params"]["max_new_tokens"] > 1:  # generation: the greedy continuation, 3 tokens
            out = self.session.model.generate(**inputs, max_new_tokens=3, do_sample=False)[0, len(ids):].tolist()
            return httpx.Response(200, json={"text": "", "meta_info": {
                "output_token_logprobs": [[-1.0, t, None] for t in out], "finish_reason": {"type": "length"}}})
        return httpx.Response(200, json={"text": "", "meta_info": {"input_token_logprobs": rows}})
