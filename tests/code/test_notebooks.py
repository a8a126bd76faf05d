"""The notebooks run top to bottom with the project's code, so they never rot.

They are committed without outputs. Each takes the params file as a papermill parameter (a cell
tagged `parameters`, defaulting to the demo's params.yaml); here papermill executes them with
PARAMS pointing at a synthetic CRM like the demo's, on a kernel that is this interpreter (the
project's .venv), registered in a temporary Jupyter path. `make notebooks` runs the same on the
demo's own files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01-explore-leads.ipynb", "02-personas.ipynb"]
KERNEL = "leadq-venv"
NOTEBOOK_LEADS = 6000  # personas need a few hundred conversions to rank segments


@pytest.fixture(scope="module")
def crm_params(tmp_path_factory, base_params) -> Path:
    """A params file reading a synthetic CRM written by the demo's generator."""
    from leadq.pipelines.synthetic.crm import write_crm
    from tests.conftest import write_params

    directory = tmp_path_factory.mktemp("notebook-crm")
    crm = write_crm(directory / "crm", n_leads=NOTEBOOK_LEADS, seed=5)
    return write_params(directory, base_params, crm)


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory):
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "leadq (.venv)", "language": "python"}))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root))
    mp.setenv("MPLBACKEND", "Agg")
    yield KERNEL
    mp.undo()


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_takes_the_params_file_as_a_papermill_parameter(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    namespace: dict = {}
    exec(tagged[0].source, namespace)  # noqa: S102 - the cell only assigns constants
    # By default it reads the demo: the repository's params.yaml, relative to notebooks/.
    assert (NOTEBOOKS / namespace["PARAMS"]).resolve() == (NOTEBOOKS.parent / "params.yaml")


@pytest.mark.slow  # notebook 02 trains a model
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, venv_kernel, crm_params, tmp_path):
    import papermill

    out = tmp_path / name
    # raises PapermillExecutionError on the first failing cell
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), kernel_name=venv_kernel,
                               parameters={"PARAMS": str(crm_params)}, cwd=str(NOTEBOOKS),
                               progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and str(crm_params) in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o.get("data", o.get("text", "")) for o in outputs])
    assert "@" not in text.replace("@context", "")  # no email address is ever displayed
    assert f"{crm_params}: {NOTEBOOK_LEADS:,} leads" in text  # it read the file it was given
    if name.startswith("02"):
        assert "sme_finance_director" in text and "reasons_positive" in text
