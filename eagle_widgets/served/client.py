"""An HTTP client for model servers: JSON requests, many in flight at once (bounded), retries with back-off on
overload and transient failures, timeouts, cancel. Every failure becomes a `ServerError` naming what happened."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..core.errors import Cancelled, EagleError, InputError

# Worth another try: overload (429), server hiccups (5xx) and connection problems; anything else is an answer.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class ServerError(EagleError, RuntimeError):
    """The server could not be reached, refused a request, or answered something unusable."""


class ServerUnreachable(ServerError):
    """No answer at all: the connection failed or timed out on every try."""


class ServerClient:
    """JSON over HTTP to one server (`base_url`, e.g. "http://host:8000"), used from many threads.

    `max_in_flight` requests run at once (so a multi-replica server behind one address is kept busy);
    a request that times out, meets a connection error or an overload/5xx answer is retried up to `retries`
    times with exponential back-off (honouring Retry-After); `timeout_s` bounds each attempt."""

    def __init__(self, base_url: str, *, api_key: str | None = None, max_in_flight: int = 8, retries: int = 4,
                 timeout_s: float = 120.0, backoff_s: float = 0.5, transport=None):
        import httpx

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InputError(f"a server address starts with http:// or https://, got {base_url!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InputError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be 0 or more, got {retries!r}")
        self.base_url = base_url.rstrip("/")
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout_s,
                                  limits=httpx.Limits(max_connections=max_in_flight,
                                                      max_keepalive_connections=max_in_flight),
                                  transport=transport)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="eagle-served")
        self.requests_sent = 0
        self.retried = 0
        self._count = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def __repr__(self) -> str:
        return f"ServerClient({self.base_url!r}, max_in_flight={self.max_in_flight})"

    def get(self, path: str, *, cancel: Callable[[], bool] | None = None) -> dict:
        return self._call("GET", path, None, cancel)

    def post(self, path: str, body: dict, *, cancel: Callable[[], bool] | None = None) -> dict:
        return self._call("POST", path, body, cancel)

    def post_many(self, path: str, bodies: Sequence[dict], *, cancel: Callable[[], bool] | None = None) -> list[dict]:
        """The answers to `bodies`, in order, with at most `max_in_flight` requests at once. The first failure
        (after its retries) or a cancel stops the requests not yet sent and raises."""
        if not bodies:
            return []
        failed = threading.Event()

        def stopped() -> bool:
            return failed.is_set() or (cancel is not None and bool(cancel()))

        def one(body):
            try:
                return self._call("POST", path, body, stopped)
            except BaseException:
                failed.set()
                raise

        futures = [self._pool.submit(one, body) for body in bodies]
        try:
            return [f.result() for f in futures]
        except BaseException:
            failed.set()
            for f in futures:
                f.cancel()
            errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
            real = [e for e in errors if not isinstance(e, Cancelled)]
            if real:
                raise real[0] from None
            raise

    def _call(self, method: str, path: str, body: dict | None, cancel) -> dict:
        import httpx

        where = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            wait = None
            try:
                with self._count:
                    self.requests_sent += 1
                response = self._http.request(method, path, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout_s:g} s"
            except httpx.TransportError as err:
                last = f"cannot connect ({type(err).__name__}: {err})"
            else:
                if response.status_code < 400:
                    return _json(response, where)
                detail = _error_detail(response)
                if response.status_code not in RETRY_STATUS:
                    raise ServerError(f"{where} refused the request (HTTP {response.status_code}): {detail}")
                last = f"HTTP {response.status_code}: {detail}"
                wait = _retry_after(response)
            if attempt == self.retries:
                break
            with self._count:
                self.retried += 1
            delay = wait if wait is not None else self.backoff_s * 2 ** attempt * (1 + 0.25 * random.random())
            deadline = time.monotonic() + min(delay, 60.0)
            while time.monotonic() < deadline:  # a cancel is heard during the back-off too
                if cancel is not None and cancel():
                    raise Cancelled("cancelled")
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        tries = f"after {self.retries + 1} tries" if self.retries else "(no retries)"
        raise (ServerError if last.startswith("HTTP") else ServerUnreachable)(f"{where} failed {tries}: {last}")


def _json(response, where: str) -> dict:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text[:120].replace("\n", " ")
        raise ServerError(f"{where} answered something that is not JSON: {text!r}") from None
    if not isinstance(data, dict):
        raise ServerError(f"{where} answered JSON that is not an object: {str(data)[:120]!r}")
    return data


def _error_detail(response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300].strip() or "(no detail)"
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:300]
    return str(error)[:300]


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
