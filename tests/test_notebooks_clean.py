import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from clean_notebooks import MAX_NOTEBOOK_BYTES, problems

    nb = json.loads(path.read_text())
    assert problems(nb) == []
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "learn" in "".join(first["source"]), "say what the reader learns"


def test_checker_flags_a_dirty_notebook(tmp_path):
    output = {"output_type": "execute_result", "execution_count": 3, "data": {}, "metadata": {}}
    dirty = {"cells": [{"cell_type": "code", "execution_count": 3, "metadata": {}, "source": "1", "outputs": [output]}],
             "metadata": {"widgets": {}}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "dirty.ipynb"
    path.write_text(json.dumps(dirty))
    script = ROOT / "scripts" / "clean_notebooks.py"
    assert subprocess.run([sys.executable, script, "--check", path], capture_output=True).returncode == 1
    subprocess.run([sys.executable, script, path], check=True)
    assert subprocess.run([sys.executable, script, "--check", path], capture_output=True).returncode == 0


def test_checker_flags_machine_paths_in_outputs_but_not_images():
    sys.path.insert(0, str(ROOT / "scripts"))
    from clean_notebooks import problems

    def nb(output):
        return {"cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "x",
                           "outputs": [output]}], "metadata": {}}

    shown = {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {"text/plain": "ModelSession('/home/ana/models/qwen', family='qwen-vl')"}}
    assert any("/home/ana/models/qwen" in p for p in problems(nb(shown)))
    printed = {"output_type": "stream", "name": "stdout", "text": ["saved to C:\\Users\\ana\\x.png\n"]}
    assert problems(nb(printed))
    fine = {"output_type": "display_data", "metadata": {},
            "data": {"image/png": "iVBOR/home/x", "text/plain": "ModelSession('weights', family='llava')"}}
    assert problems(nb(fine)) == []
