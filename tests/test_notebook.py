"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient), on the bundled
assets, and is stored without outputs."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_quickstart_notebook_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    # the kernel's temporary folders (the job's output_dir) under this test's own
    client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert not [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"
    ]
    # every step printed what it did: variants, the row flow, the cache, the student's last loss
    for text in ("A gripping, funny and thoroughly original film. -> [", "ingest: 72 rows in = 72 kept + 0 rejected"):
        assert text in printed, printed[-3000:]
    assert "teacher cache augmented/train/tinybert:" in printed and "rows; labels ['negative', 'positive']" in printed
    assert printed.count("distillation loss") == 3
    # no terminal: the stages' progress as plain lines, not live bars (tqdm's "rows/s]")
    assert "  augment train tinybert: 24 rows (" in printed and "rows/s]" not in printed
    assert list(tmp_path.glob("quickstart-*/teacher/augmented/train/tinybert/manifest.json"))
