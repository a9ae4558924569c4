import json

import pytest
import yaml

from pipeline.cli import build_parser, main


def test_every_subcommand_has_help(capsys):
    for cmd in ("ingest", "augment", "teacher", "student", "run", "report", "validate"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: pipeline " + cmd in capsys.readouterr().out


def test_bad_config_exits_2_with_message(tmp_path, job_dict, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_dict(seed="x")), encoding="utf-8")
    assert main(["ingest", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: invalid job configuration" in err and "seed" in err


@pytest.mark.ray
def test_run_prints_summary_and_writes_outputs(tmp_path, job_dict, ray_local, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_dict()), encoding="utf-8")
    assert main(["run", str(path), "--output-dir", str(tmp_path / "o2")]) == 0
    out = capsys.readouterr().out
    assert "== ingest train ==" in out and "2 in = 2 kept + 0 rejected" in out
    summary = json.loads((tmp_path / "o2" / "examples" / "train" / "_summary.json").read_text())
    assert summary["kept"] == 2
    # the job report, from the stages' real outputs: row flow and augmentation counts, no teacher
    report = tmp_path / "o2" / "report.html"
    assert f"report   {report}" in out
    page = report.read_text(encoding="utf-8")
    for method in ("tinybert", "tang"):
        aug = json.loads((tmp_path / "o2" / "augmented" / "train" / method / "_summary.json").read_text())
        tries = aug["tries_per_example"] * 2
        assert (
            f'<td>train</td><td>{method}</td><td class="num">2</td><td class="num">{aug["tries_per_example"]}'
            f'</td><td class="num">{tries}</td><td class="num">{aug["variants"]}</td>'
            f'<td class="num">{tries - aug["variants"]}</td><td class="num">{aug["rows_out"]}</td>'
        ) in page
    assert "The teacher stage did not run" in page and "No student was trained" in page


def test_student_without_outputs_exits_2_naming_what_is_missing(tmp_path, job_dict, capsys):
    job = job_dict(
        student={
            "runs": [{"name": "s", "model": "bilstm", "data": "examples/train"}],
            "test_split": None,
            "dev_split": "train",
        }
    )
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    assert main(["student", str(path)]) == 2
    err = capsys.readouterr().err
    assert "examples/train" in err and "has not been ingested" in err


@pytest.mark.parametrize("blocker", ["file", "file-parent"])
def test_output_dir_that_cannot_be_a_folder_exits_2_naming_it(tmp_path, job_dict, capsys, blocker):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder", encoding="utf-8")
    out = taken if blocker == "file" else taken / "out"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_dict(output_dir=str(out))), encoding="utf-8")
    assert main(["ingest", str(path), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {out}" in err and "Traceback" not in err
    assert taken.read_text(encoding="utf-8") == "a file, not a folder"


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, job_dict, capsys, monkeypatch):
    import pipeline.ingest.stage as ingest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "run_ingest", interrupted)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_dict()), encoding="utf-8")
    assert main(["ingest", str(path), "--executor", "local"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: every finished task's files are kept" in err and "run the same command again" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_a_second_run_on_the_same_output_dir_is_refused_naming_the_first(tmp_path, job_dict, capsys):
    """While one run holds the output folder a second fails at once, saying who holds it; once the
    holder is gone (killed: its lock stays behind) the next run takes the lock over."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_dict(output_dir=str(out))), encoding="utf-8")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pipeline.runtime.lock import output_lock\n"
                f"with output_lock({str(out)!r}, 'pipeline run job.yaml'):\n"
                "    print('held', flush=True); time.sleep(120)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        assert main(["ingest", str(path), "--executor", "local"]) == 2
        err = capsys.readouterr().err
        assert f"error: {out} is in use by another run: host " in err and f"pid {holder.pid}" in err, err
        assert "(pipeline run job.yaml)" in err and time.perf_counter() - started < 10
        assert not (out / "examples").exists()  # nothing of the first run was touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".pipeline.lock").exists()  # a killed holder leaves its lock
    assert main(["ingest", str(path), "--executor", "local"]) == 0  # taken over: that process is gone
    assert not (out / ".pipeline.lock").exists() and (out / "examples" / "train").is_dir()
    assert os.listdir(out)
