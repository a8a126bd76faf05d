"""`leadq synth`: write a synthetic CRM (leads, deals, feedback, truth) to a directory.

The generator itself lives in leadq.pipelines.synthetic.crm; this is only the command.
"""

from __future__ import annotations

from pathlib import Path


def main(out: str | Path, *, leads: int, seed: int = 0, fmt: str = "csv",
         leads_only: bool = False, shape: str = "leadq", segments: int | None = None) -> dict:
    from leadq.errors import BadInputError
    from leadq.pipelines.synthetic.crm import write_crm

    if segments is not None:
        from leadq.pipelines.synthetic.segments import write_segmented

        if shape != "leadq" or fmt != "csv" or leads_only:
            raise BadInputError("--segments writes its own CSV leads, truth and params: drop "
                                "--shape / --format parquet / --leads-only")
        paths = write_segmented(out, n_leads=leads, seed=seed, segments=segments)
        return {"written": {k: str(v) for k, v in paths.items()}}

    if shape != "leadq":
        from leadq.pipelines.synthetic.shapes import write_shaped

        if fmt != "csv" or leads_only:
            raise BadInputError(f"--shape {shape}: a vendor's report export is CSV with "
                                "every table; drop --format parquet / --leads-only")
        paths = write_shaped(out, shape, n_leads=leads, seed=seed)
        return {"written": {k: str(v) for k, v in paths.items()}}
    paths = write_crm(out, n_leads=leads, seed=seed, fmt=fmt, leads_only=leads_only)
    return {"written": {k: str(v) for k, v in paths.items()}}
