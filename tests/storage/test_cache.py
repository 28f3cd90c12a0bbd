import os
import subprocess
import sys
import time

import numpy as np
import pytest
from eagle_widgets.core import Attribution, CacheError, LogisticScorer, RegionSet, attribute
from eagle_widgets.storage import ResultCache


def _result(seed=0, n=(4, 5)):
    rs = RegionSet.grid((20, 30), rows=n[0], cols=n[1])
    r = attribute(LogisticScorer.random(rs.n, 2, seed=seed), rs, mode="exact")
    r.image = np.full((20, 30, 3), 90, np.uint8)
    return r


def test_round_trip_and_keys(tmp_path):
    cache = ResultCache(tmp_path / "c")
    key = cache.key({"model": "m", "image": np.zeros((2, 2)), "tokens": [1, 2]})
    assert key == cache.key({"tokens": [1, 2], "image": np.zeros((2, 2)), "model": "m"})  # order-free
    assert key != cache.key({"model": "m", "image": np.ones((2, 2)), "tokens": [1, 2]})
    assert key != cache.key({"model": "m", "image": np.zeros((2, 2), np.float32), "tokens": [1, 2]})
    assert cache.get(key) is None and cache.misses == 1
    r = _result()
    cache.put(key, r)
    back = cache.get(key)
    assert back.order == r.order and cache.hits == 1 and len(cache) == 1
    np.testing.assert_array_equal(back.insertion_tokens, r.insertion_tokens)
    with pytest.raises(CacheError, match="hex digest"):
        cache.get("../../etc/passwd")


def test_partial_results_are_not_cached(tmp_path):
    cache = ResultCache(tmp_path)
    rs = RegionSet.grid((20, 30), rows=3, cols=3)
    partial = attribute(LogisticScorer.random(rs.n, 1), rs, mode="exact", cancel=lambda: True)
    cache.put(cache.key("p"), partial)
    assert len(cache) == 0


def test_corrupt_entry_is_dropped_and_recomputed(tmp_path):
    cache = ResultCache(tmp_path)
    key = cache.key("k")
    cache.put(key, _result())
    path = next(tmp_path.glob("*/*.eagle"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        assert cache.get(key) is None
    assert not path.exists()


def test_size_cap_evicts_the_least_recently_used(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10**9)
    keys = [cache.key(i) for i in range(4)]
    for i, k in enumerate(keys):
        cache.put(k, _result(i))
        path = next(tmp_path.glob(f"*/{k}.eagle"))
        os.utime(path, (1000 + i, 1000 + i))
    cache.get(keys[0])  # used again: now the newest
    entry = os.path.getsize(next(tmp_path.glob("*/*.eagle")))
    small = ResultCache(tmp_path, max_bytes=int(entry * 2.5))
    small.evict()
    left = {p.stem for p in tmp_path.glob("*/*.eagle")}
    assert left == {keys[0], keys[3]}


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="not writable.*cache=False"):
        ResultCache(blocker)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(CacheError, match="not writable"):
            ResultCache(locked / "cache")
    finally:
        locked.chmod(0o700)


WRITER = """
import sys
import numpy as np
from eagle_widgets.core import LogisticScorer, RegionSet, attribute
from eagle_widgets.storage import ResultCache
rs = RegionSet.grid((20, 30), rows=4, cols=5)
result = attribute(LogisticScorer.random(rs.n, 2, seed=int(sys.argv[2])), rs, mode="exact")
cache = ResultCache(sys.argv[1])
key = cache.key("shared")
for _ in range(25):
    cache.put(key, result)
    got = cache.get(key)
    assert got is not None and got.complete
print("ok")
"""


def test_two_processes_writing_the_same_entry(tmp_path):
    # Separate interpreters (not fork: torch threads in a forked child can deadlock).
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(seed)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for seed in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [o.strip() for o, _ in outs] == ["ok", "ok"], [e[-1000:] for _, e in outs]
    assert list(tmp_path.glob("*/*.eagle")) and not list(tmp_path.glob("*/.*.tmp"))
    assert isinstance(ResultCache(tmp_path).get(ResultCache.key("shared")), Attribution)


def _result(seed=0):
    rs = RegionSet.grid((20, 30), rows=2, cols=3)
    return attribute(LogisticScorer.random(rs.n, 2, seed=seed), rs, mode="exact")


def test_entries_answer_only_their_own_key(tmp_path):
    cache = ResultCache(tmp_path)
    a, b = cache.key(["a"]), cache.key(["b"])
    cache.put(a, _result(0))
    assert cache.get(a).cache_key == a
    # Another selection's result copied under b's name is not b's answer.
    cache._path(b).parent.mkdir(exist_ok=True)
    cache._path(b).write_bytes(cache._path(a).read_bytes())
    with pytest.warns(UserWarning, match="wrong key"):
        assert cache.get(b) is None
    assert cache.get(a) is not None


def test_an_entry_from_a_newer_version_is_left_alone(tmp_path):
    import json
    import zipfile

    cache = ResultCache(tmp_path)
    key = cache.key(["newer"])
    cache.put(key, _result())
    path = cache._path(key)
    with zipfile.ZipFile(path) as zf:
        meta, arrays = json.loads(zf.read("attribution.json")), zf.read("arrays.npz")
    meta["version"] = 99
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("attribution.json", json.dumps(meta))
        zf.writestr("arrays.npz", arrays)
    assert cache.get(key) is None and path.exists()


def test_stale_temporary_files_are_counted_then_removed(tmp_path):
    cache = ResultCache(tmp_path)
    key = cache.key(["t"])
    cache.put(key, _result())
    leftover = cache._path(key).parent / f".{key}.eagle.abc.tmp"
    leftover.write_bytes(b"x" * 1000)
    assert cache.size_bytes() >= 1000 + cache._path(key).stat().st_size
    cache.evict()
    assert leftover.exists()  # a live writer's file is kept
    old = time.time() - 2 * 3600
    os.utime(leftover, (old, old))
    cache.evict()
    assert not leftover.exists() and cache.get(key) is not None


def test_a_folder_this_process_cannot_write_is_read_only(tmp_path, monkeypatch):
    from eagle_widgets.storage import cache as cache_module

    writer = ResultCache(tmp_path)
    key = writer.key(["shared"])
    writer.put(key, _result())

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.tempfile, "NamedTemporaryFile", refuse)
    reader = ResultCache(tmp_path)
    assert reader.read_only and reader.get(key) is not None
    reader.put(reader.key(["other"]), _result(1))  # silently not stored: the folder is someone else's
    assert reader.get(reader.key(["other"])) is None


def test_a_folder_at_an_entry_path_is_a_miss_and_stays(tmp_path):
    cache = ResultCache(tmp_path)
    key = cache.key(["folder"])
    cache._path(key).mkdir(parents=True)
    with pytest.warns(UserWarning):
        assert cache.get(key) is None
    with pytest.warns(UserWarning, match="could not store"):
        cache.put(key, _result())
    assert cache._path(key).is_dir() and not list(cache._path(key).parent.glob(".*.tmp"))
