import json

import numpy as np
import pytest
from eagle_widgets.core import BundleError, LogisticScorer, RegionSet, attribute
from eagle_widgets.storage import import_reference_result


def write_reference(folder, result, name="0001"):
    """Write `result` the way the authors' release stores an explanation (json/ + npy/ per sample)."""
    order = result.order
    masks = np.stack([(result.regions.labels == r) for r in order]).astype(np.uint8)[..., None].repeat(3, -1)
    ins, dele = result.insertion_tokens, result.deletion_tokens
    meta = {
        "region_area": result.areas[1:].tolist(),
        "insertion_score": ins[1:].mean(1).tolist(), "deletion_score": dele[1:].mean(1).tolist(),
        "insertion_word_score": ins[1:].tolist(), "deletion_word_score": dele[1:].tolist(),
        "org_score": result.p_full.tolist(), "baseline_score": result.p_black.tolist(),
        "smdl_score": result.scores[1:].tolist(),
        "output_words": ["a", " red", " circle", "</s>"], "selected_interpretation_token_id": [1, 2],
    }
    (folder / "json").mkdir(parents=True, exist_ok=True)
    (folder / "npy").mkdir(parents=True, exist_ok=True)
    (folder / "json" / f"{name}.json").write_text(json.dumps(meta))
    np.save(folder / "npy" / f"{name}.npy", masks)
    return folder / "json" / f"{name}.json"


@pytest.fixture
def result():
    rs = RegionSet.grid((24, 32), rows=3, cols=4)
    return attribute(LogisticScorer.random(rs.n, 2, seed=3), rs, mode="exact")


def test_import_reproduces_the_trajectory_and_metrics(tmp_path, result):
    path = write_reference(tmp_path, result)
    back = import_reference_result(path, image=np.zeros((24, 32, 3), np.uint8))
    np.testing.assert_allclose(back.insertion_tokens, result.insertion_tokens)
    np.testing.assert_allclose(back.deletion_tokens, result.deletion_tokens)
    assert back.insertion_auc == pytest.approx(result.insertion_auc)
    assert back.deletion_auc == pytest.approx(result.deletion_auc)
    np.testing.assert_allclose(back.pixel_map(), result.pixel_map())  # same map: region k is the k-th ranked
    assert back.token_labels == [" red", " circle"] and back.complete and back.mode == "imported"


def test_bad_reference_files(tmp_path, result):
    path = write_reference(tmp_path, result)
    with pytest.raises(BundleError, match="no such result file"):
        import_reference_result(tmp_path / "json" / "nope.json")
    broken = tmp_path / "json" / "broken.json"
    broken.write_text(path.read_text()[:50])
    with pytest.raises(BundleError, match="not valid JSON"):
        import_reference_result(broken)
    (tmp_path / "json" / "other.json").write_text('{"hello": 1}')
    with pytest.raises(BundleError, match="lacks region_area"):
        import_reference_result(tmp_path / "json" / "other.json")
    (tmp_path / "json" / "lonely.json").write_text(path.read_text())
    with pytest.raises(BundleError, match="masks of lonely.json are missing"):
        import_reference_result(tmp_path / "json" / "lonely.json")
    npy = tmp_path / "npy" / "0001.npy"
    npy.write_bytes(npy.read_bytes()[:60])
    with pytest.raises(BundleError, match="not a readable .npy"):
        import_reference_result(path)
    write_reference(tmp_path, result)
    with pytest.raises(BundleError, match="image is 10x10 but the masks are 32x24"):
        import_reference_result(path, image=np.zeros((10, 10, 3), np.uint8))
