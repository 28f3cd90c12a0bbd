"""A disk cache of explanations that survives kernel restarts and is safe with several processes.

Entries are result bundles named by a hash of everything that decides the result, and each stores that
key: an entry holding another key is never returned. Writes are atomic (a temporary file, then a rename),
so a reader sees a whole entry or none, and two processes writing the same entry both leave a valid file.
A corrupt entry is dropped and recomputed, never returned; an entry from a newer eagle-widgets is left
alone; a reader drops only the very file it failed to read, never one a writer has just put in its place.
Temporary files of killed writers are counted and removed once stale. A folder this process cannot write
is used read-only. Past `max_bytes`, the least recently used entries are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..core.attribution import Attribution
from ..core.bundle import load_attribution, save_attribution
from ..core.errors import BundleError, CacheError, NewerBundleError

DEFAULT_MAX_BYTES = 512 * 2 ** 20
SUFFIX = ".eagle"
STALE_TEMP_S = 3600  # a writer's temporary file older than this belongs to a killed process


def default_cache_dir() -> Path | None:
    """$EAGLE_WIDGETS_CACHE (None when it says "off", "0", "false" or "none"), else
    $XDG_CACHE_HOME/eagle-widgets, else ~/.cache/eagle-widgets. The one place that reads the variable."""
    value = os.environ.get("EAGLE_WIDGETS_CACHE", "").strip()
    if value.lower() in ("0", "off", "false", "none"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eagle-widgets"


def fingerprint(value) -> str:
    """A stable hex digest of arrays, numbers, strings and nested lists/dicts of them."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, np.ndarray):
            h.update(f"array{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v, key=str):
                feed(str(k))
                feed(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                feed(x)
            h.update(b"]")
        else:
            h.update(json.dumps(v, default=str).encode())

    feed(value)
    return h.hexdigest()


class ResultCache:
    """`cache.get(key)` / `cache.put(key, result)` with `key = cache.key(parts)`; see the module doc."""

    def __init__(self, folder=None, max_bytes: int = DEFAULT_MAX_BYTES):
        folder = folder if folder is not None else default_cache_dir()
        if folder is None:
            raise CacheError("the disk cache is switched off ($EAGLE_WIDGETS_CACHE); pass a folder to use one")
        self.folder = Path(folder).expanduser()
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise CacheError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.read_only = False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".probe."):
                pass
        except OSError as err:
            if not (self.folder.is_dir() and os.access(self.folder, os.R_OK | os.X_OK)):
                raise CacheError(f"the cache folder {self.folder} is not writable or not a folder "
                                 f"({err.strerror or err}); pass another folder, or cache=False to explain without "
                                 "a disk cache") from None
            self.read_only = True  # a shared cache someone else fills: read it, store nothing
        self.hits = self.misses = 0

    def __repr__(self) -> str:
        return f"ResultCache({str(self.folder)!r}, entries={len(self)}, {self.size_bytes() / 2**20:.1f} MiB)"

    @staticmethod
    def key(parts) -> str:
        return fingerprint(parts)

    def _path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise CacheError(f"a cache key is a hex digest, got {key!r}")
        return self.folder / key[:2] / f"{key}{SUFFIX}"

    def _entries(self):
        for path in self.folder.glob(f"*/*{SUFFIX}"):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed by another process meanwhile
                continue
            yield path, st

    def get(self, key: str) -> Attribution | None:
        path = self._path(key)
        try:
            before = path.stat()
        except OSError:
            self.misses += 1
            return None
        try:
            result = load_attribution(path)
        except NewerBundleError:
            self.misses += 1  # readable by a newer version sharing this cache: leave it
            return None
        except BundleError as err:
            self._drop_if_unchanged(path, before, f"dropping a corrupt cache entry ({err})")
            self.misses += 1
            return None
        stored = result.cache_key
        if stored != key:  # never another question's answer; an entry from before keys were stored is replaced
            if stored is not None:
                self._drop_if_unchanged(path, before, f"dropping a cache entry stored under the wrong key "
                                                      f"({path.name})")
            self.misses += 1
            return None
        try:
            os.utime(path)  # recently used: evicted last
        except OSError:
            pass
        self.hits += 1
        return result

    def _drop_if_unchanged(self, path: Path, before: os.stat_result, message: str) -> None:
        """Remove the entry that failed, unless a writer has replaced it since (then it is a fresh one)."""
        try:
            now = path.stat()
        except OSError:
            return
        if (now.st_ino, now.st_mtime_ns, now.st_size) != (before.st_ino, before.st_mtime_ns, before.st_size):
            return
        warnings.warn(message, stacklevel=3)
        if not self.read_only and path.is_file():  # never a folder someone put there
            path.unlink(missing_ok=True)

    def put(self, key: str, result: Attribution) -> None:
        """Store a complete result (partial ones are never cached) with its key; failures only warn."""
        if not result.complete or self.read_only:
            return
        before = result.cache_key
        result.cache_key = key
        try:
            save_attribution(result, self._path(key))
        except BundleError as err:
            result.cache_key = before
            warnings.warn(f"could not store the result in the cache: {err}", stacklevel=2)
            return
        self.evict()

    def _temporaries(self):
        for path in self.folder.glob("*/.*.tmp"):
            try:
                yield path, path.stat()
            except FileNotFoundError:
                continue

    def evict(self) -> None:
        now = time.time()
        total = 0
        for path, st in self._temporaries():  # killed writers' leftovers: removed once stale, counted until then
            if now - st.st_mtime > STALE_TEMP_S:
                path.unlink(missing_ok=True)
            else:
                total += st.st_size
        entries = sorted(self._entries(), key=lambda e: e[1].st_mtime)
        total += sum(st.st_size for _, st in entries)
        for path, st in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= st.st_size

    def size_bytes(self) -> int:
        return sum(st.st_size for _, st in self._entries()) + sum(st.st_size for _, st in self._temporaries())

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def clear(self) -> None:
        for path, _ in list(self._entries()):
            path.unlink(missing_ok=True)
