import json
import os
import zipfile

import numpy as np
import pytest
from eagle_widgets.core import Attribution, BundleError, LogisticScorer, RegionSet, attribute
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture
def result():
    rs = RegionSet.grid((20, 30), rows=4, cols=5)
    r = attribute(LogisticScorer.random(rs.n, 2, seed=4), rs, mode="efficient")
    r.token_labels = ["red", "circle"]
    r.info = {"prompt": "describe the image .", "targets": [1, 2]}
    r.image = np.full((20, 30, 3), 90, np.uint8)
    return r


def test_round_trip(tmp_path, result):
    path = tmp_path / "r.eagle"
    result.save(path)
    back = Attribution.load(path)
    assert back.order == result.order and back.mode == "efficient" and back.params == result.params
    np.testing.assert_array_equal(back.regions.labels, result.regions.labels)
    np.testing.assert_array_equal(back.insertion_tokens, result.insertion_tokens)
    np.testing.assert_array_equal(back.region_values, result.region_values)
    np.testing.assert_array_equal(back.image, result.image)
    assert back.token_labels == ["red", "circle"] and back.info == result.info
    assert back.metrics() == result.metrics()
    assert os.path.getsize(path) < 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["r.eagle"]  # no temporary file left behind


def test_label_map_is_stored_once_and_compressed(tmp_path):
    rs = RegionSet.slic(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8), 64)
    r = attribute(LogisticScorer.random(rs.n, 1), rs, mode="early_stop")
    r.save(tmp_path / "big.eagle")
    assert os.path.getsize(tmp_path / "big.eagle") < 200_000  # vs ~150 MB of masks in the reference


def test_truncated_file_gives_clear_error_and_keeps_the_old_one(tmp_path, result):
    path = tmp_path / "r.eagle"
    result.save(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.eagle"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or not a bundle"):
        Attribution.load(bad)
    assert Attribution.load(path).order == result.order


def test_foreign_and_newer_files(tmp_path, result):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(BundleError, match="not a readable eagle-widgets result"):
        Attribution.load(txt)
    with pytest.raises(BundleError, match="no such result file"):
        Attribution.load(tmp_path / "missing.eagle")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("x.txt", "x")
    with pytest.raises(BundleError, match="not an eagle-widgets result"):
        Attribution.load(other)
    path = tmp_path / "r.eagle"
    result.save(path)
    changes = [({"version": 99}, "newer eagle-widgets"), ({"schema": "x"}, "not an eagle-widgets attribution"),
               ({"order": [0, 0]}, "inconsistent data")]
    for change, message in changes:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("attribution.json"))
            arrays = zf.read("arrays.npz")
        meta.update(change)
        edited = tmp_path / "edited.eagle"
        with zipfile.ZipFile(edited, "w") as zf:
            zf.writestr("attribution.json", json.dumps(meta))
            zf.writestr("arrays.npz", arrays)
        with pytest.raises(BundleError, match=message):
            Attribution.load(edited)


def test_failed_write_keeps_previous_file(tmp_path, result):
    path = tmp_path / "r.eagle"
    result.save(path)
    before = path.read_bytes()
    result.info = {"not json": object()}
    with pytest.raises(BundleError, match="JSON"):
        result.save(path)
    assert path.read_bytes() == before
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(BundleError, match="cannot write"):
            result.save(ro / "x.eagle")
    finally:
        ro.chmod(0o700)


def _rewrite(path, meta_change=None, arrays_change=None):
    import io

    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("attribution.json"))
        with np.load(io.BytesIO(zf.read("arrays.npz"))) as npz:
            arrays = {k: npz[k] for k in npz.files}
    meta.update(meta_change or {})
    arrays.update(arrays_change or {})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("attribution.json", json.dumps(meta))
        zf.writestr("arrays.npz", buf.getvalue())


@pytest.mark.parametrize("meta, arrays, match", [
    ({"complete": "no"}, None, "complete"),
    (None, {"p_full": np.array([1.5])}, "outside"),
    (None, {"insertion_tokens": None}, "NaN"),
    (None, {"image": np.zeros((3, 3, 3), np.uint8)}, "does not match the label map"),
    (None, {"labels": np.zeros((20000, 20000), np.uint8)}, "limit"),
])
def test_bundles_that_cannot_be_results_are_refused(tmp_path, meta, arrays, match):
    from eagle_widgets.core import load_attribution

    rs = RegionSet.grid((20, 30), rows=2, cols=3)
    result = attribute(LogisticScorer.random(rs.n, 1, seed=0), rs, mode="exact")
    result.image = np.zeros((20, 30, 3), np.uint8)
    path = tmp_path / "r.eagle"
    result.save(path)
    if arrays and "insertion_tokens" in arrays:
        arrays = {"insertion_tokens": np.full_like(result.insertion_tokens, np.nan)}
    _rewrite(path, meta, arrays)
    with pytest.raises(BundleError, match=match):
        load_attribution(path)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 4), cols=st.integers(2, 5), tokens=st.integers(1, 3),
       complete=st.booleans(), labels=st.lists(st.text(max_size=6), min_size=3, max_size=3))
def test_bundles_round_trip_exactly(tmp_path_factory, seed, rows, cols, tokens, complete, labels):
    from eagle_widgets.core import load_attribution

    rs = RegionSet.grid((12, 15), rows=rows, cols=cols)
    cancel = None if complete else (lambda calls=[0]: calls.append(1) or len(calls) > 3)
    result = attribute(LogisticScorer.random(rs.n, tokens, seed=seed), rs, mode="exact", cancel=cancel)
    result.token_labels = labels[:tokens]
    result.info = {"prompt": labels[0], "nested": {"a": [1, 2.5, None]}}
    path = tmp_path_factory.mktemp("rt") / "r.eagle"
    result.save(path)
    back = load_attribution(path)
    assert back.order == result.order and back.complete == result.complete
    assert back.token_labels == result.token_labels and back.info == result.info
    for name in ("areas", "insertion_tokens", "deletion_tokens", "p_full", "p_black"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    np.testing.assert_array_equal(back.regions.labels, result.regions.labels)


def test_version_2_keeps_the_answer_context_and_version_1_is_still_read(tmp_path):
    from eagle_widgets.core import AnswerContext, load_attribution

    rs = RegionSet.grid((20, 30), rows=2, cols=3)
    result = attribute(LogisticScorer.random(rs.n, 1, seed=0), rs, mode="exact")
    result.context = AnswerContext(model="m", prompt="is there a moon ?", answer="yes", generated_tokens=("yes",),
                                   generated_ids=(5,), targets=(0,), target_ids=(6,), scoring={"path": "fast"})
    result.cache_key = "ab12"
    path = tmp_path / "v2.eagle"
    result.save(path)
    back = load_attribution(path)
    assert back.context == result.context and back.cache_key == "ab12"
    # A version-1 bundle kept the same fields in `info`.
    _rewrite(path, {"version": 1, "context": None, "cache_key": None,
                    "info": {**result.context.to_dict(), "cache_key": "ab12"}})
    old = load_attribution(path)
    assert old.context == result.context and old.cache_key == "ab12"
