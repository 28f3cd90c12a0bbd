"""How each kind of server generates an answer and scores a given one for an image.

- `VLLMChat` (exact): vLLM's chat completions take the answer as the final assistant message
  (`continue_final_message`) and return every prompt token's log-probability (`prompt_logprobs`) with the
  prompt's token ids (`return_token_ids`): one request per masked image gives p(answer token | image, prompt,
  prefix), teacher forced, as the local session computes it.
- `SGLangGenerate` (exact): SGLang's native `/generate` with `return_logprob` and `logprob_start_len`; the
  chat template is applied here (SGLang's native API takes text), so it needs the model's tokenizer locally.
- `TopKContinuation` (approximate): APIs that return log-probabilities of generated tokens only (OpenAI-style
  chat completions). It reproduces the authors' API approximation: per answer token, one call whose
  assistant message is the answer's prefix under a "continue the text" system prompt, reading the token among
  the first generated position's top k; a token outside the top k scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError
from .client import ServerClient, ServerError

CONTINUATION_PROMPT = (  # the authors' system prompt for the approximation (tutorial/API_interpretation.ipynb)
    "You are a text continuation engine. Continue the assistant's text exactly where it stops. "
    "Output ONLY the continuation, with no preamble, no quotes and no repetition of the given text.")


@dataclass
class Answer:
    """An answer as a server produced or tokenised it: token ids (None where the API gives none), each
    token's text, which tokens are special (end of turn), the text and why generation stopped."""

    ids: list[int] | None
    tokens: list[str]
    special: list[bool]
    text: str
    finish_reason: str = ""


@dataclass
class Prepared:
    """What is sent for every masked image of one explanation: the answer sequences to score and where each
    target is read."""

    sequences: list[dict] = field(default_factory=list)  # protocol-specific request parts
    reads: list[tuple[int, int]] = field(default_factory=list)  # per target: (sequence, position in it)
    calls_per_image: int = 1


def image_message(image_url: str, prompt: str) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                        {"type": "text", "text": prompt}]}


def _field(data: dict, path: str, where: str):
    """data[a][b]... for path "a.b", or a ServerError naming the missing field."""
    value = data
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value and value[part] is not None:
            value = value[part]
        else:
            raise ServerError(f"{where}: the server's answer has no {path!r} (is this the server and API you named?)")
    return value


class ScoringProtocol:
    """A server API: generate, tokenise, and score an answer for a batch of images."""

    name = ""
    exact = True
    approximation = ""  # what the scores approximate, for approximate protocols

    def generate(self, client: ServerClient, model: str, image_url: str, prompt: str, max_new_tokens: int,
                 ) -> Answer:
        raise NotImplementedError

    def tokenize(self, client: ServerClient, model: str, text: str) -> Answer:
        raise InputError(f"the {self.name} API cannot tokenise a given answer; let the model generate one")

    def prepare(self, client: ServerClient, model: str, answer: Answer, targets: list[int], target_ids: list[int],
                prompt: str, image_url: str) -> Prepared:
        raise NotImplementedError

    def score(self, client: ServerClient, model: str, prepared: Prepared, image_urls: list[str], prompt: str,
              cancel: Callable[[], bool] | None = None, tally: dict | None = None) -> np.ndarray:
        """[images, targets] probabilities; `tally` counts what was asked (and, where approximate, missed)."""
        raise NotImplementedError

    def describe(self) -> dict:
        out = {"api": self.name, "exact": self.exact}
        if self.approximation:
            out["approximation"] = self.approximation
        return out


class VLLMChat(ScoringProtocol):
    """vLLM's OpenAI-compatible chat completions, with its prompt log-probabilities: exact."""

    name = "vllm"
    path = "/v1/chat/completions"

    def generate(self, client, model, image_url, prompt, max_new_tokens):
        body = {"model": model, "messages": [image_message(image_url, prompt)], "max_tokens": max_new_tokens,
                "temperature": 0, "logprobs": True, "return_token_ids": True}
        where = f"generating with {model}"
        data = client.post(self.path, body)
        choice = _field(data, "choices.0", where)
        ids = _field(choice, "token_ids", where + " (vLLM returns them with return_token_ids)")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise ServerError(f"{where}: the server generated no tokens ({ids!r})")
        finish = str(choice.get("finish_reason") or "")
        tokens = self.pieces(client, model, ids)
        text = str(_field(choice, "message", where).get("content") or "")
        # The end-of-turn token ends a stopped answer and is not in its text.
        special = [i == len(ids) - 1 and finish == "stop" and not text.endswith(tokens[i]) for i in range(len(ids))]
        return Answer(ids, tokens, special, text.strip(), finish)

    def tokenize(self, client, model, text):
        data = client.post("/tokenize", {"model": model, "prompt": text, "add_special_tokens": False})
        ids = _field(data, "tokens", "tokenising the given answer")
        if not ids:
            raise InputError(f"the given answer {text!r} is no tokens for this model")
        return Answer(list(ids), self.pieces(client, model, ids), [False] * len(ids), text.strip())

    def pieces(self, client, model, ids: list[int]) -> list[str]:
        """Each token's text as it shows in the decoded answer (decoding growing prefixes, as the local session
        does, keeps multi-byte characters and word joins right)."""
        texts = [_field(d, "prompt", "decoding the answer") for d in client.post_many(
            "/detokenize", [{"model": model, "tokens": ids[: i + 1]} for i in range(len(ids))])]
        return pieces_of(texts, ids)

    def prepare(self, client, model, answer, targets, target_ids, prompt, image_url):
        if answer.ids is None:
            raise InputError("this answer has no token ids; vLLM scores token ids")
        sequences, reads = answer_sequences(answer.ids, targets, target_ids)
        texts = [_field(d, "prompt", "decoding the answer") for d in client.post_many(
            "/detokenize", [{"model": model, "tokens": seq} for seq in sequences])]
        prepared = Prepared([{"ids": seq, "text": text} for seq, text in zip(sequences, texts)], reads,
                            len(sequences))
        self._check_image_is_read(client, model, prepared, prompt, image_url)
        return prepared

    def _body(self, model, image_url, prompt, text, top: int = 0):
        messages = [image_message(image_url, prompt) if image_url else {"role": "user", "content": prompt},
                    {"role": "assistant", "content": text}]
        return {"model": model, "messages": messages, "add_generation_prompt": False,
                "continue_final_message": True, "prompt_logprobs": top, "return_token_ids": True,
                "max_tokens": 1, "temperature": 0}

    def _check_image_is_read(self, client, model, prepared, prompt, image_url):
        """A server that drops the image (a text-only model, images disabled) serves the same prompt tokens as
        without it: refuse rather than explain a model that never saw the image."""
        seq = prepared.sequences[0]
        with_image, without = client.post_many(self.path, [self._body(model, image_url, prompt, seq["text"]),
                                                            self._body(model, None, prompt, seq["text"])])
        where = "checking the image (vLLM returns prompt_token_ids with return_token_ids)"
        n_with = len(_field(with_image, "prompt_token_ids", where))
        n_without = len(_field(without, "prompt_token_ids", where))
        if n_with <= n_without:
            raise ServerError(f"the server dropped the image: the prompt with it is {n_with} tokens, without it "
                              f"{n_without}; is {model} a vision-language model, and does the server accept images "
                              "(vLLM: --limit-mm-per-prompt)?")
        self._read(with_image, seq["ids"], "checking the answer")

    def score(self, client, model, prepared, image_urls, prompt, cancel=None, tally=None):
        bodies = [self._body(model, url, prompt, seq["text"]) for url in image_urls for seq in prepared.sequences]
        answers = client.post_many(self.path, bodies, cancel=cancel)
        _count(tally, "requests", len(bodies))
        k = len(prepared.sequences)
        out = np.zeros((len(image_urls), len(prepared.reads)))
        for b in range(len(image_urls)):
            logprobs = [self._read(answers[b * k + j], seq["ids"], f"scoring masked image {b}")
                        for j, seq in enumerate(prepared.sequences)]
            for col, (j, t) in enumerate(prepared.reads):
                out[b, col] = math.exp(logprobs[j][t])
        return out

    def greedy_ids(self, client, model, prepared, image_urls, prompt, cancel=None) -> np.ndarray:
        """The model's top token at each target position (teacher forced), from the prompt's top-1 entries."""
        bodies = [self._body(model, url, prompt, prepared.sequences[j]["text"], top=1)
                  for url in image_urls for j, _ in prepared.reads]
        answers = client.post_many(self.path, bodies, cancel=cancel)
        out = np.zeros((len(image_urls), len(prepared.reads)), dtype=np.int64)
        for b in range(len(image_urls)):
            for col, (j, t) in enumerate(prepared.reads):
                entries = self._entries(answers[b * len(prepared.reads) + col], prepared.sequences[j]["ids"],
                                        "reading the greedy token")
                best = [tid for tid, e in entries[t].items() if isinstance(e, dict) and e.get("rank") == 1]
                if not best:
                    raise ServerError("the server's prompt log-probabilities name no rank-1 token")
                out[b, col] = int(best[0])
        return out

    def _entries(self, data: dict, ids: list[int], where: str) -> list[dict]:
        prompt_ids = _field(data, "prompt_token_ids", where + " (vLLM returns them with return_token_ids)")
        entries = _field(data, "prompt_logprobs", where + " (the server returns no prompt log-probabilities)")
        if not isinstance(prompt_ids, list) or not isinstance(entries, list) or len(entries) != len(prompt_ids):
            raise ServerError(f"{where}: prompt_logprobs ({len(entries) if isinstance(entries, list) else '?'} "
                              f"entries) do not match the prompt's {len(prompt_ids)} token ids")
        tail = prompt_ids[-len(ids):]
        if tail != ids:
            raise ServerError(
                f"{where}: the server tokenises the answer to other ids than the answer's (its prompt ends "
                f"{_ids(tail)}, the answer is {_ids(ids)}), so its scores would be for another token sequence. This "
                "happens when a model generates tokens its tokenizer would not produce from the text; explain a "
                "given answer (session.teacher_force) instead")
        return [{str(k): v for k, v in (e or {}).items()} for e in entries[-len(ids):]]

    def _read(self, data: dict, ids: list[int], where: str) -> list[float]:
        out = []
        for entry, tid in zip(self._entries(data, ids, where), ids):
            item = entry.get(str(tid))
            value = item.get("logprob") if isinstance(item, dict) else None
            if not isinstance(value, (int, float)) or value != value or value > 1e-6:
                raise ServerError(f"{where}: the server returned no log-probability for answer token {tid}")
            out.append(float(value))
        return out


class SGLangGenerate(ScoringProtocol):
    """SGLang's native `/generate` (documented fields: `text`, `image_data`, `return_logprob`,
    `logprob_start_len`, `meta_info.input_token_logprobs`). Its image placeholders are expanded on the server,
    so the answer is read from the last entries. The chat template is applied here with `tokenizer`."""

    name = "sglang"
    path = "/generate"

    def __init__(self, tokenizer):
        if tokenizer is None or not hasattr(tokenizer, "apply_chat_template"):
            raise InputError("SGLang's native API takes templated text: pass tokenizer= the model's tokenizer or "
                             "processor (a folder or id that transformers loads), whose chat template the server "
                             "uses")
        self.templater = tokenizer  # a processor's template places the image; its tokenizer reads text
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer)

    def _text(self, prompt: str, answer_text: str | None) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        if answer_text is None:
            return self.templater.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer_text}]})
        return self.templater.apply_chat_template(messages, tokenize=False, continue_final_message=True)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def generate(self, client, model, image_url, prompt, max_new_tokens):
        data = client.post(self.path, {"text": self._text(prompt, None), "image_data": [image_url],
                                       "sampling_params": {"max_new_tokens": max_new_tokens, "temperature": 0},
                                       "return_logprob": True})
        where = f"generating with {model}"
        rows = _field(data, "meta_info.output_token_logprobs", where)
        ids = [int(r[1]) for r in rows]
        if not ids:
            raise ServerError(f"{where}: the server generated no tokens")
        finish = _field(data, "meta_info", where).get("finish_reason")
        finish = str(finish.get("type", "")) if isinstance(finish, dict) else str(finish or "")
        tokens = _pieces(self._decode, ids)
        special_ids = set(getattr(self.tokenizer, "all_special_ids", []))
        return Answer(ids, tokens, [i in special_ids for i in ids], str(data.get("text", "")).strip(), finish)

    def tokenize(self, client, model, text):
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InputError(f"the given answer {text!r} is no tokens for this model")
        return Answer(list(ids), _pieces(self._decode, ids), [False] * len(ids), text.strip())

    def prepare(self, client, model, answer, targets, target_ids, prompt, image_url):
        sequences, reads = answer_sequences(answer.ids, targets, target_ids)
        return Prepared([{"ids": seq, "text": self._text(prompt, self._decode(seq))} for seq in sequences], reads,
                        len(sequences))

    def score(self, client, model, prepared, image_urls, prompt, cancel=None, tally=None):
        bodies = [{"text": seq["text"], "image_data": [url], "sampling_params": {"max_new_tokens": 1,
                   "temperature": 0}, "return_logprob": True, "logprob_start_len": 0}
                  for url in image_urls for seq in prepared.sequences]
        answers = client.post_many(self.path, bodies, cancel=cancel)
        _count(tally, "requests", len(bodies))
        k = len(prepared.sequences)
        out = np.zeros((len(image_urls), len(prepared.reads)))
        for b in range(len(image_urls)):
            for col, (j, t) in enumerate(prepared.reads):
                ids = prepared.sequences[j]["ids"]
                rows = _field(answers[b * k + j], "meta_info.input_token_logprobs", f"scoring masked image {b}")
                tail = rows[-len(ids):]
                got = [int(r[1]) for r in tail]
                if got != ids:
                    raise ServerError(f"scoring masked image {b}: the server tokenises the answer to other ids than "
                                      f"the answer's ({got} instead of {ids})")
                out[b, col] = math.exp(float(tail[t][0]))
        return out


class TopKContinuation(ScoringProtocol):
    """OpenAI-style chat completions with top-k log-probabilities of generated tokens: approximate."""

    name = "openai-topk"
    exact = False
    path = "/v1/chat/completions"

    def __init__(self, top_k: int = 20):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise InputError(f"top_k must be 1..20 (what OpenAI-style APIs return), got {top_k!r}")
        self.top_k = top_k
        self.approximation = (
            f"top-{top_k} continuation (the authors' API approximation): each answer token is read among the "
            f"top {top_k} first tokens of a new assistant turn that continues the answer's prefix; tokens "
            "outside the top k score 0")

    def generate(self, client, model, image_url, prompt, max_new_tokens):
        body = {"model": model, "messages": [image_message(image_url, prompt)], "max_tokens": max_new_tokens,
                "temperature": 0, "logprobs": True, "top_logprobs": 1}
        where = f"generating with {model}"
        choice = _field(client.post(self.path, body), "choices.0", where)
        content = _field(choice, "logprobs.content", where + " (the API returns no log-probabilities)")
        tokens = [str(c.get("token", "")) for c in content]
        if not tokens:
            raise ServerError(f"{where}: the server generated no tokens")
        ids = choice.get("token_ids")  # vLLM adds them; OpenAI does not
        ids = [int(i) for i in ids] if isinstance(ids, list) and len(ids) == len(tokens) else None
        text = str(_field(choice, "message", where).get("content") or "")
        return Answer(ids, tokens, [False] * len(tokens), text.strip(), str(choice.get("finish_reason") or ""))

    def prepare(self, client, model, answer, targets, target_ids, prompt, image_url):
        if answer.ids is not None and any(answer.ids[t] != tid for t, tid in zip(targets, target_ids)):
            raise InputError("the top-k approximation reads the answer's own tokens; other target ids cannot be "
                             "scored")
        return Prepared([{"prefix": "".join(answer.tokens[:t]), "target": answer.tokens[t]} for t in targets],
                        [(j, t) for j, t in enumerate(targets)], len(targets))

    def _body(self, model, image_url, prompt, prefix):
        messages = [{"role": "system", "content": CONTINUATION_PROMPT}, image_message(image_url, prompt)]
        if prefix:
            messages.append({"role": "assistant", "content": prefix})
        return {"model": model, "messages": messages, "max_tokens": 1, "temperature": 0, "logprobs": True,
                "top_logprobs": self.top_k}

    def score(self, client, model, prepared, image_urls, prompt, cancel=None, tally=None):
        bodies = [self._body(model, url, prompt, seq["prefix"]) for url in image_urls for seq in prepared.sequences]
        answers = client.post_many(self.path, bodies, cancel=cancel)
        _count(tally, "requests", len(bodies))
        k = len(prepared.sequences)
        out = np.zeros((len(image_urls), k))
        for b in range(len(image_urls)):
            for j, seq in enumerate(prepared.sequences):
                where = f"scoring masked image {b}"
                first = _field(answers[b * k + j], "choices.0.logprobs.content.0", where + " (no log-probabilities)")
                candidates = first.get("top_logprobs") or []
                target = seq["target"]
                found = next((c for c in candidates if isinstance(c, dict) and c.get("token") in
                              {target, target.lstrip()} - {""}), None)
                if found is None:
                    _count(tally, "tokens_outside_top_k", 1)
                else:
                    out[b, j] = math.exp(float(found.get("logprob", -math.inf)))
        return out

    def describe(self) -> dict:
        return {**super().describe(), "top_k": self.top_k}


def answer_sequences(ids: list[int], targets, target_ids) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The answer sequences to score and where each target is read, (sequence, position): targets scored at their
    generated id share one sequence; another id at a position (the correct answer of a hallucination) is read from
    a sequence that ends with it."""
    same = [t for t, tid in zip(targets, target_ids) if ids[t] == tid]
    sequences = [ids[: max(same) + 1]] if same else []
    reads = []
    for t, tid in zip(targets, target_ids):
        if ids[t] != tid:
            sequences.append(ids[:t] + [tid])
        reads.append((0 if ids[t] == tid else len(sequences) - 1, t))
    return sequences, reads


def _ids(ids: list[int], most: int = 12) -> str:
    return str(ids) if len(ids) <= most else f"[... {', '.join(map(str, ids[-most:]))}]"


def _count(tally: dict | None, name: str, n: int) -> None:
    if tally is not None:
        tally[name] = tally.get(name, 0) + n


def pieces_of(prefix_texts: list[str], ids: list[int]) -> list[str]:
    """Each token's text from the decoded texts of the answer's growing prefixes ("<id>" where a token adds no
    whole character)."""
    out, prev = [], ""
    for tid, text in zip(ids, prefix_texts):
        piece = text[len(prev):] if text.startswith(prev) else ""
        out.append(piece or f"<{tid}>")
        prev = text
    return out


def _pieces(decode, ids) -> list[str]:
    return pieces_of([decode(ids[: i + 1]) for i in range(len(ids))], ids)


PROTOCOLS = {"vllm": VLLMChat, "sglang": SGLangGenerate, "openai-topk": TopKContinuation}
