"""Dataset runs, the browser and imports against hostile and broken input: every sample's failure becomes its
own record and the run goes on; files are checked before they are read; folders are locked; ids never
collide; stored bundles are verified; boxes are validated; the authors' files are bounded and checked."""

import json
import os
import re
import shutil
import threading
import time

import numpy as np
import pytest
from eagle_widgets.cli import main as cli
from eagle_widgets.core import BundleError, InputError
from eagle_widgets.core.images import load_image
from eagle_widgets.core.metrics import pixel_box, pointing_game
from eagle_widgets.evaluation import DatasetBrowser, EvaluationOptions, ResultsFolder, evaluate, read_manifest
from eagle_widgets.evaluation.store import file_name
from eagle_widgets.storage import import_reference_result
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

OPTIONS = dict(mode="efficient", regions=8)
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@given(st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=6, unique=True))
@settings(max_examples=200, deadline=None)
def test_ids_become_distinct_plain_file_names(ids):
    names = [file_name(i) for i in ids]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._~-]*", name) and len(name) <= 80


def test_sanitised_ids_that_looked_alike_stay_apart():
    assert len({file_name("dup/"), file_name("dup\\"), file_name("dup_")}) == 3
    assert file_name("word-001") == "word-001"  # plain ids keep their names (older runs resume)


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    from eagle_widgets.demo import make_scene

    folder = tmp_path_factory.mktemp("scene")
    Image.fromarray(make_scene(1_000_025).image).save(folder / "scene.png")
    return folder / "scene.png"


def _manifest(folder, rows):
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_one_bad_sample_never_stops_a_run(tmp_path, scene_png, demo_session, monkeypatch):
    from eagle_widgets.core import validation

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    os.mkfifo(data / "fifo.png")
    with open(data / "huge.png", "wb") as f:  # sparse: 2 GiB on paper, nothing on disk
        f.truncate(2 << 30)
    good = {"image": str(scene_png), "prompt": "describe the image ."}
    rows = [{"id": "strings-mask", **good, "mask": "strings.npy"},
            {"id": "x" * 250, **good}, {"id": "漢" * 80, **good},
            {"id": "fifo", "image": "fifo.png", "prompt": "describe the image ."},
            {"id": "huge", "image": "huge.png", "prompt": "describe the image ."},
            {"id": "dup/", **good}, {"id": "dup\\", **good, "tokens": "oops"}, {"id": "dup_", **good},
            {"id": HOSTILE, "image": HOSTILE + ".png", "prompt": "describe the image ."},
            {"id": "normalised-box", **good, "tokens": [0], "box": [0.1, 0.1, 0.9, 0.9]}]
    manifest = _manifest(data, rows)
    monkeypatch.setattr(validation, "MAX_FILE_BYTES", 64 << 20)
    started = time.perf_counter()
    summary = evaluate(manifest, tmp_path / "run", progress=False, threads=1, **OPTIONS)
    assert time.perf_counter() - started < 300  # the FIFO did not hang the run
    folder = ResultsFolder(tmp_path / "run")
    records = {r["id"]: r for r in folder.records()}
    assert set(records) == {r["id"] for r in rows}  # every sample filed under its own id, none lost
    assert summary["samples"] == len(rows) and summary["errors"] == 6
    errors = {i: r["error"] for i, r in records.items() if r["status"] != "ok"}
    assert "holds <U1 values" in errors["strings-mask"]
    assert "not a regular file" in errors["fifo"]
    assert "more than the limit" in errors["huge"]
    assert "tokens must be" in errors["dup\\"]
    assert "no such image file" in errors[HOSTILE]
    assert "looks normalised" in errors["normalised-box"]
    for ok in ("x" * 250, "漢" * 80, "dup/", "dup_"):
        assert records[ok]["status"] == "ok", records[ok]
    assert len(folder.path.joinpath("results.csv").read_text().splitlines()) == len(rows) + 1
    # Resuming computes nothing again, and the errors stay recorded.
    again = evaluate(manifest, tmp_path / "run", progress=False, threads=1, **OPTIONS)
    assert again["computed"] == 0 and again["errors"] == 6


def test_a_sample_key_streams_and_never_reads_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    manifest = _manifest(tmp_path, [{"id": "a", "image": "fifo.png", "prompt": "p"}])
    done = []
    thread = threading.Thread(target=lambda: done.append(read_manifest(manifest).samples[0].key), daemon=True)
    thread.start()
    thread.join(10)
    assert done and len(done[0]) == 24


def test_two_runs_on_one_folder_the_second_refuses(tmp_path, scene_png):
    options = EvaluationOptions(**OPTIONS)
    first = ResultsFolder(tmp_path / "run", options).lock()
    try:
        manifest = _manifest(tmp_path, [{"id": "a", "image": str(scene_png), "prompt": "describe the image ."}])
        with pytest.raises(InputError, match=r"another run is writing to .*pid \d+"):
            evaluate(manifest, tmp_path / "run", progress=False, **OPTIONS)
    finally:
        first.unlock()
    # A killed run's temporary files go when the next run takes the folder; nobody else's files do.
    (tmp_path / "run" / "records").mkdir(exist_ok=True)
    stale = tmp_path / "run" / "records" / ".a.json.abc.tmp"
    stale.write_text("half")
    mine = tmp_path / "run" / ".notes.tmp"
    mine.write_text("kept")
    ResultsFolder(tmp_path / "run", options).lock().unlock()
    assert not stale.exists() and mine.exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, scene_png):
    root = tmp_path_factory.mktemp("small-run")
    rows = [{"id": i, "image": str(scene_png), "prompt": "describe the image ."} for i in ("a", "b")]
    rows.append({"id": HOSTILE, "image": HOSTILE, "prompt": "describe the image ."})
    evaluate(_manifest(root, rows), root / "run", progress=False, threads=1, **OPTIONS)
    return root / "run"


def test_bundles_are_verified_against_their_records(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    folder = ResultsFolder(run)
    shutil.copy(folder.bundle_path("b"), folder.bundle_path("a"))  # b's explanation filed as a's
    with pytest.raises(InputError, match="not the one its record filed"):
        folder.load("a")
    options_folder = ResultsFolder(run, folder.options)
    samples = {s.id: s for s in read_manifest(small_run.parent / "manifest.jsonl").samples}
    assert not options_folder.done(samples["a"]) and options_folder.done(samples["b"])
    browser = DatasetBrowser(run)
    browser.show_sample("b")
    assert browser.detail.children
    browser.show_sample("a")  # nothing of b stays on screen
    assert browser.detail.children == () and "not the one its record filed" in browser.status.value
    folder.bundle_path("b").unlink()
    browser.show_sample("b")
    assert browser.detail.children == () and "no stored explanation" in browser.status.value


def test_the_browser_escapes_ids_paths_and_errors(small_run):
    browser = DatasetBrowser(small_run)
    browser.show_sample(HOSTILE)
    assert "<img" not in browser.status.value and "&lt;img src=x onerror=" in browser.status.value


def test_boxes_are_checked_and_fractions_converted(tmp_path):
    assert pixel_box([10, 20, 30, 40], (100, 200)) == (10, 20, 30, 40)
    with pytest.raises(InputError, match="looks normalised"):
        pixel_box([0.1, 0.1, 0.9, 0.9], (100, 200))
    with pytest.raises(InputError, match="outside the 200x100 image"):
        pixel_box([300, 10, 400, 50], (100, 200))
    saliency = np.zeros((100, 200))
    saliency[50, 100] = 1
    with pytest.raises(InputError, match="outside"):
        pointing_game(saliency, box=[-50, -50, -10, -10])
    manifest = _manifest(tmp_path, [{"id": "f", "image": "x.png", "prompt": "p", "tokens": [0],
                                     "box": [0.4, 0.4, 0.6, 0.6], "box_units": "fraction"},
                                    {"id": "g", "image": "x.png", "prompt": "p", "box_units": "inches",
                                     "box": [1, 2, 3, 4]}])
    read = read_manifest(manifest)
    assert read.samples[0].pixel_box((100, 200)) == (80, 40, 120, 60)
    assert "box_units must be" in dict(read.broken)["g"]


def test_ordinary_disk_problems_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    manifest = _manifest(tmp_path, [{"id": "a", "image": "x.png", "prompt": "p"}])
    assert cli(["evaluate", str(manifest), "--out", str(tmp_path / "file" / "run")]) == 2
    assert "eagle-widgets: " in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{not json")
    assert cli(["evaluate", str(manifest), "--out", str(run)]) == 2
    assert "run.json is corrupt" in capsys.readouterr().err
    assert cli(["evaluate", str(manifest), "--out", str(tmp_path / "r2"), "--workers", "-1"]) == 2
    assert "workers must be" in capsys.readouterr().err


def test_images_are_turned_upright_by_their_exif_orientation(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :10] = 255  # white on the left of a landscape picture
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: viewers rotate 90 degrees clockwise
    Image.fromarray(array).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # the white edge is now on top


def _authors_files(tmp_path, meta=None, masks=None):
    (tmp_path / "json").mkdir(exist_ok=True)
    (tmp_path / "npy").mkdir(exist_ok=True)
    k = 3
    default = {"region_area": [0.3, 0.6, 1.0], "insertion_score": [0.2, 0.5, 0.9],
               "deletion_score": [0.6, 0.3, 0.1], "org_score": [0.9], "baseline_score": [0.1]}
    (tmp_path / "json" / "x.json").write_text(meta if isinstance(meta, str) else json.dumps({**default,
                                                                                               **(meta or {})}))
    if masks is None:
        masks = np.zeros((k, 6, 6), bool)
        masks[0, :2], masks[1, 2:4], masks[2, 4:] = True, True, True
    np.save(tmp_path / "npy" / "x.npy", masks)
    return tmp_path / "json" / "x.json"


def test_authors_imports_are_bounded_and_checked(tmp_path):
    assert import_reference_result(_authors_files(tmp_path)).num_regions == 3
    # A tiny file whose header declares 12 x 100000 x 100000 masks is refused from the header alone.
    path = _authors_files(tmp_path)
    header = {"descr": "|b1", "fortran_order": False, "shape": (12, 100000, 100000)}
    with open(tmp_path / "npy" / "x.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    with pytest.raises(BundleError, match="beyond the limits"):
        import_reference_result(path)
    for bad in ([float("nan"), 0.5, 0.9], [0.2, 5.0, 0.9], [0.2, float("inf"), 0.9]):
        with pytest.raises(BundleError, match="outside \\[0, 1\\]"):
            import_reference_result(_authors_files(tmp_path, {"insertion_score": bad}))
    with pytest.raises(BundleError, match="not valid JSON|not a well-formed"):
        import_reference_result(_authors_files(tmp_path, "[" * 100_000 + "]" * 100_000))
    with pytest.raises(BundleError, match="not a well-formed|non-numeric"):
        import_reference_result(_authors_files(tmp_path, {"insertion_score": [[1, 2], [3]]}))
