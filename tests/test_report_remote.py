"""The job report of an output folder on an object store (moto's S3 server on 127.0.0.1): the same
page as for the same folder on local disk, written to the store and nowhere else."""

import html
import re

import pytest

from pipeline import storage
from pipeline.report import REPORT_NAME, ReportError, write_report
from tests.test_report_render import job  # noqa: F401  (the tiny finished job of the render tests)


def _page(text, output_dir):
    """A page with its output folder and its minute of generation made the same for any run."""
    assert text.count(html.escape(output_dir)) == 1
    text = text.replace(html.escape(output_dir), "OUTPUT_DIR")
    return re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "generated TIME", text)


def test_report_of_an_s3_folder_is_the_report_of_the_same_local_folder(job, s3, tmp_path, monkeypatch):  # noqa: F811
    local = job["root"] / "out"
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert REPORT_NAME not in files and "teacher/examples/dev/manifest.json" in files
    # the folder is named "out" on both sides: the page's default title is the folder's name
    remote = s3.bucket("reports") + "/jobs/out"
    for rel in files:
        storage.upload(str(local / rel), f"{remote}/{rel}")
    # a URI taken for a local path would land in the working folder; a staged upload in scratch
    cwd, scratch = tmp_path / "cwd", tmp_path / "scratch"
    cwd.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PIPELINE_SCRATCH_DIR", str(scratch))

    path = write_report(remote)

    assert path == f"{remote}/{REPORT_NAME}"
    assert s3.keys("reports") == sorted(f"jobs/out/{rel}" for rel in [*files, REPORT_NAME])
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == files
    assert list(cwd.iterdir()) == [] and list(scratch.iterdir()) == []
    remote_page = storage.read_text(path)
    assert "did not run" not in remote_page and "No student was trained" not in remote_page
    assert write_report(str(local)) == str(local / REPORT_NAME)
    local_page = (local / REPORT_NAME).read_text(encoding="utf-8")
    assert _page(remote_page, remote) == _page(local_page, str(local))


def test_report_of_a_missing_s3_folder_says_so_and_writes_nothing(s3):
    bucket = s3.bucket("reports")
    with pytest.raises(ReportError, match=r"^s3://reports/jobs/none: no such output folder \(has the job run\?\)$"):
        write_report(f"{bucket}/jobs/none")
    # credentials in the URI are used, never printed
    with pytest.raises(ReportError, match=r"^s3://reports/jobs/none: no such output folder") as err:
        write_report("s3://KEYID:SECRETKEY@reports/jobs/none")
    assert "SECRETKEY" not in str(err.value) and "KEYID" not in str(err.value)
    assert s3.keys("reports") == []
