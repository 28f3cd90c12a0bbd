"""The COCO and authors'-format readers on small files written here."""

import json

import numpy as np
import pytest
from eagle_widgets.core import InputError
from eagle_widgets.evaluation import from_authors, from_coco, read_manifest
from PIL import Image


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in (("a.jpg", (64, 48)), ("b.jpg", (40, 30))):
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(folder / name)
    return folder


def _coco(tmp_path, annotations, categories=()):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                                           {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}],
                                "annotations": annotations, "categories": list(categories)}))
    return path


def test_coco_captions_become_teacher_forced_sentences(tmp_path, images):
    ann = _coco(tmp_path, [{"id": 5, "image_id": 1, "caption": " A dog on grass. "},
                           {"id": 6, "image_id": 1, "caption": "second caption"},
                           {"id": 7, "image_id": 2, "caption": "A cat."}, {"id": 8, "image_id": 9, "caption": "x"}])
    path, skipped = from_coco(ann, images, tmp_path / "out")
    samples = read_manifest(path).samples
    assert [(s.id, s.answer, s.tokens, s.protocol) for s in samples] == [
        ("coco-1", "A dog on grass.", "all", "sentence"), ("coco-2", "A cat.", "all", "sentence")]
    assert samples[0].load_image().shape == (48, 64, 3)
    assert skipped == [("8", "its image_id is not among the images")]


def test_coco_instances_take_the_largest_object_with_mask_and_box(tmp_path, images):
    ann = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 18, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0,
         "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0,
         "segmentation": [[0, 0, 4, 0, 4, 4]]},
    ], categories=[{"id": 18, "name": "dog"}, {"id": 3, "name": "traffic light"}])
    path, _ = from_coco(ann, images, tmp_path / "out")
    (sample,) = read_manifest(path).samples
    assert sample.tokens == {"words": ["dog"]} and sample.box == (10, 5, 30, 15) and sample.protocol == "word"
    mask = sample.load_mask((48, 64))
    assert mask[10, 20] and not mask[30, 50] and 150 < mask.sum() < 260


def test_authors_lists(tmp_path, images):
    entries = [
        {"image_path": "a.jpg", "target_generated_index": 1, "target_generated_id": 22, "generated_ids": [[5, 22, 7]],
         "location": [10, 5, 20, 10], "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]},
        {"image_path": "b.jpg", "target_generated_index": 1, "target_generated_id": 99, "generated_ids": [5, 22]},
        {"image_name": "b.jpg", "id": 17, "question": "Is there a cat?", "selected_interpretation_token_id": [0],
         "counter_word_id": 4},
        {"image_filename": "a.jpg", "question": "What colour?", "output_word_id": [3, 4],
         "selected_interpretation_token_id": [0, 1]},
        "not an entry",
    ]
    src = tmp_path / "authors.json"
    src.write_text(json.dumps(entries))
    path, skipped = from_authors(src, images, tmp_path / "out", question_template="Q: {} A:")
    samples = {s.id: s for s in read_manifest(path).samples}
    a = samples["a"]
    assert a.answer == [5, 22, 7] and a.tokens == [1] and a.box == (10.0, 5.0, 30.0, 15.0) and a.mask
    assert a.load_mask((48, 64)).any()
    hall = samples["b-17"]
    assert hall.prompt == "Q: Is there a cat? A:" and hall.correct_answer == 4 and hall.protocol == "hallucination"
    assert samples["a-3"].answer == [3, 4] and samples["a-3"].tokens == [0, 1]
    assert ("b", "target_generated_id does not match the answer at target_generated_index") in skipped
    assert ("entry 4", "not an object") in skipped


def test_readers_refuse_what_they_cannot_read(tmp_path, images):
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(InputError, match="is not JSON"):
        from_coco(tmp_path / "x.json", images, tmp_path / "out")
    (tmp_path / "y.json").write_text("[]")
    with pytest.raises(InputError, match="not a COCO annotation file"):
        from_coco(tmp_path / "y.json", images, tmp_path / "out")
    with pytest.raises(InputError, match="gave no sample"):
        from_authors(tmp_path / "y.json", images, tmp_path / "out")


def test_malformed_entries_are_skipped_and_listed_not_fatal(tmp_path, images):
    ann = _coco(tmp_path, [{"id": 5, "image_id": 1, "category_id": 3, "bbox": "wide", "area": 10},
                           {"id": 6, "image_id": 2, "category_id": 3, "bbox": [1, 2, 10, 10], "area": 5},
                           "not an annotation"],
                categories=[{"id": 3, "name": "dog"}])
    path, skipped = from_coco(ann, images, tmp_path / "out")
    assert [s.id for s in read_manifest(path).samples] == ["coco-2"]
    reasons = dict(skipped)
    assert "malformed entry" in reasons["coco-1"] and "not an object" in reasons["annotation"]
    authors = tmp_path / "authors.json"
    authors.write_text(json.dumps([{"image_path": "a.jpg", "target_generated_index": "three",
                                    "generated_ids": [1, 2]},
                                   {"image_path": "b.jpg", "generated_ids": [4, 5], "target_generated_index": 1}]))
    path, skipped = from_authors(authors, images, tmp_path / "out2")
    assert [s.tokens for s in read_manifest(path).samples] == [[1]]
    assert skipped[0][0] == "entry 0" and "malformed entry" in skipped[0][1]
