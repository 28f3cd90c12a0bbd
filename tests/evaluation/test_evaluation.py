"""Dataset runs with the demo model: protocols, resumption after a kill, broken samples, local vs Ray."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from eagle_widgets.core import InputError, load_attribution
from eagle_widgets.evaluation import (
    EvaluationOptions,
    ResultsFolder,
    evaluate,
    make_demo_dataset,
    read_manifest,
    read_results,
    write_manifest,
)
from eagle_widgets.evaluation.backends import FAULT_ENV

OPTIONS = dict(mode="efficient", regions=12)
ONE_THREAD = dict(threads=1)  # equal thread counts: bit-identical results across backends


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_session):
    folder = tmp_path_factory.mktemp("demo-dataset")
    return make_demo_dataset(folder, captions=2, words=2, hallucinations=2, session=demo_session)


@pytest.fixture(scope="module")
def in_process(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-in-process")
    summary = evaluate(dataset, out, progress=False, **ONE_THREAD, **OPTIONS)
    return out, summary


def _rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_protocol_is_measured_and_filed(in_process, dataset):
    out, summary = in_process
    assert summary["samples"] == 6 and summary["errors"] == 0 and summary["computed"] == 6
    protocols = summary["protocols"]
    assert set(protocols) == {"sentence", "word", "hallucination"}
    assert protocols["word"]["pointing_box"] is not None and protocols["word"]["pointing_mask"] is not None
    hall = protocols["hallucination"]
    assert hall["hallucinated"] == 2 and 0 <= hall["amcr"] <= 1 and 0 <= hall["csr"] <= 1
    rows = _rows(out)
    assert [r["id"] for r in rows] == [s.id for s in read_manifest(dataset).samples]
    for row in rows:
        result = load_attribution(out / "bundles" / f"{row['id']}.eagle")  # the explanation is stored
        assert result.complete and result.num_regions == int(row["n_regions"])
        assert float(row["insertion_auc"]) == pytest.approx(result.insertion_auc, abs=1e-12)
        assert result.context.answer == row["answer"]
    word = next(r for r in rows if r["protocol"] == "word")
    assert word["explained"] in ("circle", "square", "triangle", "star", "cross", "moon")
    table = read_results(out)  # pandas reads the table as it is
    assert list(table["id"]) == [r["id"] for r in rows] and table["insertion_auc"].dtype == np.float64
    text = (out / "summary.md").read_text()
    assert "| word level (chosen words) | 2 |" in text and "AMCR ↓" in text


def test_a_finished_run_computes_nothing_again_and_refuses_other_options(in_process, dataset):
    out, _ = in_process
    before = {p.name: p.read_bytes() for p in (out / "records").iterdir()}
    summary = evaluate(dataset, out, progress=False, **OPTIONS)
    assert summary["computed"] == 0
    assert {p.name: p.read_bytes() for p in (out / "records").iterdir()} == before
    with pytest.raises(InputError, match="other options.*regions 12 -> 16"):
        evaluate(dataset, out, progress=False, mode="efficient", regions=16)


def test_a_killed_run_resumes_and_does_every_sample_exactly_once(tmp_path, demo_session):
    manifest = make_demo_dataset(tmp_path / "data", captions=6, words=2, hallucinations=0)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "eagle_widgets.cli", "evaluate", str(manifest), "--out", str(out),
           "--mode", "exact", "--regions", "12"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "records").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.read_bytes() for p in (out / "records").glob("*.json")}
    assert 3 <= len(done_before) < 8, "the run should be killed mid-way"
    filed = []
    summary = evaluate(manifest, out, progress=False, mode="exact", regions=12, on_record=filed.append)
    assert summary["errors"] == 0 and summary["samples"] == 8
    assert len(filed) == 8 - len(done_before)  # nothing done before is computed again ...
    assert not {r["id"] + ".json" for r in filed} & set(done_before)
    for name, data in done_before.items():  # ... nor rewritten
        assert (out / "records" / name).read_bytes() == data
    ids = [r["id"] for r in _rows(out)]
    assert sorted(ids) == sorted(s.id for s in read_manifest(manifest).samples) and len(set(ids)) == 8
    assert not list(out.rglob(".*.tmp"))


def test_broken_samples_are_recorded_and_the_run_goes_on(tmp_path, dataset):
    good = read_manifest(dataset).samples
    root = dataset.parent
    lines = [
        {**good[0].to_dict(), "image": str(root / good[0].image)},
        {"id": "missing-image", "image": str(root / "nowhere.png"), "prompt": "describe the image ."},
        {"id": "no-such-word", "image": str(root / good[0].image), "prompt": "describe the image .",
         "tokens": {"words": ["giraffe"]}},
        {"id": "mask-size", "image": str(root / good[0].image), "prompt": "describe the image .",
         "tokens": [0]},
        {"id": "empty-prompt", "image": str(root / good[0].image), "prompt": "  "},
        {"id": "index-out-of-range", "image": str(root / good[0].image), "prompt": "describe the image .",
         "tokens": [999]},
    ]
    from PIL import Image

    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    lines[3]["mask"] = str(tmp_path / "small.png")
    manifest = write_manifest(lines, tmp_path / "m.jsonl")
    with open(manifest, "a") as f:
        f.write("{not json\n")
    summary = evaluate(manifest, tmp_path / "run", progress=False, **OPTIONS)
    rows = {r["id"]: r for r in _rows(tmp_path / "run")}
    assert rows[good[0].id]["status"] == "ok"
    errors = {k: r["error"] for k, r in rows.items() if r["status"] == "error"}
    assert summary["errors"] == len(errors) == 6
    assert "no such image file" in errors["missing-image"]
    assert "no token 'giraffe'" in errors["no-such-word"]
    assert "the mask small.png is 10x10 but the image is 224x224" in errors["mask-size"]
    assert "'prompt' must be a non-empty string" in errors["empty-prompt"]
    assert "999" in errors["index-out-of-range"]
    assert "not JSON" in errors["line 7"]
    assert "Traceback" not in json.dumps(errors)


def test_the_cli_reports_errors_in_one_line(tmp_path):
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"id": "a", "image": "x.png", "prompt": "p"}\n{"id": "a", "image": "y.png", "prompt": "p"}\n')
    run = subprocess.run([sys.executable, "-m", "eagle_widgets.cli", "evaluate", str(bad), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == 2 and "appears twice" in run.stderr and "Traceback" not in run.stderr


def _same_results(a, b):
    rows_a, rows_b = _rows(a), _rows(b)
    assert [r["id"] for r in rows_a] == [r["id"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("status", "answer", "explained", "n_regions", "evaluations", "pointing_box", "pointing_mask",
                    "hallucinated", "mcr", "corrected"):
            assert ra[key] == rb[key], (ra["id"], key)
        for key in ("insertion_auc", "deletion_auc", "highest_score"):
            assert ra[key] == rb[key], (ra["id"], key)  # to the last digit written
        assert load_attribution(a / "bundles" / f"{ra['id']}.eagle").order == \
            load_attribution(b / "bundles" / f"{rb['id']}.eagle").order


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_local_results(in_process, dataset, tmp_path, local_ray):
    out, _ = in_process
    summary = evaluate(dataset, tmp_path / "ray", progress=False, backend="ray", **ONE_THREAD, **OPTIONS)
    assert summary["computed"] == 6 and summary["errors"] == 0
    _same_results(out, tmp_path / "ray")
    assert {r["worker"] for r in _rows(tmp_path / "ray")} <= {"ray0", "ray1"}


@pytest.mark.slow
def test_a_lost_ray_worker_is_replaced_and_its_sample_retried(dataset, tmp_path, in_process, local_ray):
    marker = tmp_path / "crashed"
    os.environ[FAULT_ENV] = f"word-001:{marker}"
    try:
        summary = evaluate(dataset, tmp_path / "ray", progress=False, backend="ray", workers=2, **ONE_THREAD,
                           **OPTIONS)
    finally:
        del os.environ[FAULT_ENV]
    assert local_ray.is_initialized()  # a Ray the caller started is left running
    assert marker.exists() and summary["errors"] == 0 and summary["computed"] == 6
    rows = {r["id"]: r for r in _rows(tmp_path / "ray")}
    assert rows["word-001"]["attempts"] == "2" and all(r["attempts"] == "1" for k, r in rows.items()
                                                       if k != "word-001")
    _same_results(in_process[0], tmp_path / "ray")


@pytest.mark.slow
def test_two_local_workers_survive_a_lost_worker(dataset, tmp_path, in_process):
    marker = tmp_path / "crashed"
    os.environ[FAULT_ENV] = f"caption-001:{marker}"
    try:
        summary = evaluate(dataset, tmp_path / "two", progress=False, workers=2, **ONE_THREAD, **OPTIONS)
    finally:
        del os.environ[FAULT_ENV]
    assert marker.exists() and summary["errors"] == 0 and summary["computed"] == 6
    rows = {r["id"]: r for r in _rows(tmp_path / "two")}
    assert rows["caption-001"]["attempts"] == "2" and {r["worker"] for r in rows.values()} <= {"cpu0", "cpu1"}
    _same_results(in_process[0], tmp_path / "two")


def test_options_are_checked():
    with pytest.raises(InputError, match="mode must be one of"):
        EvaluationOptions(mode="fast")
    with pytest.raises(InputError):
        EvaluationOptions(regions=1)
    with pytest.raises(InputError, match="no dataset run"):
        ResultsFolder("/nonexistent-folder")
