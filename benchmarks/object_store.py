"""The demo job with its outputs on an object store (S3) against a local folder.

    python -m benchmarks.object_store                # jobs/demo.yaml (300 + 200 + 200 sentences)
    python -m benchmarks.object_store --limit 60     # every split cut to 60 sentences (quicker)

moto's S3 server runs on 127.0.0.1 with ``tests/s3_proxy.FaultProxy`` in front of it (no faults),
which counts the requests and bytes that go through. Each stage runs as a user runs it, in a fresh
process (``python -m pipeline ingest|augment|teacher|student|report JOB --output-dir ...``, a local
Ray started by it where the stage uses Ray), once into ``s3://BUCKET/demo`` (``AWS_ENDPOINT_URL``
pointing at the proxy) and once into a local temporary folder, side by side, stage by stage.

Printed per stage: the wall seconds of both and their ratio; the S3 requests, MB sent and received
(request and response bytes on the wire, headers included) and objects written (new keys under the
output prefix, listed from the server directly, not through the proxy); the stage's output rows
(from its ``_summary.json`` files in the bucket) and the requests, MB and objects per million
output rows. Then every stage again on both (everything reused: each only checks that its
outputs are up to date), with the S3 requests that takes. A stage that fails prints ``failed: <reason>`` (its log is kept under
``.bench/object_store/``); the stages after it are still tried. moto keeps the objects in memory:
the figures are request counts and the cost of the client side, not an object store's latency.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs/demo.yaml"
STAGES = ("ingest", "augment", "teacher", "student", "report")
LOGS = ROOT / ".bench" / "object_store"
BUCKET = "kd-bench"
PREFIX = "demo"


def _job_file(limit: int | None, work: Path) -> Path:
    """jobs/demo.yaml, or a copy with every input cut to ``limit`` rows."""
    if limit is None:
        return JOB
    job = yaml.safe_load(JOB.read_text(encoding="utf-8"))
    for spec in job["inputs"].values():
        spec["limit"] = min(limit, spec.get("limit") or limit)
    path = work / "demo-limited.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
    return path


def _reason(stderr: str) -> str:
    """The error line of a failed command (the CLI's ``error: ...``, else a traceback's last line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    text = errors[-1].removeprefix("error:").strip() if errors else (lines[-1] if lines else "no output")
    return text if len(text) <= 300 else text[:297] + "..."


class _Outputs:
    """The keys and ``_summary.json`` files of one run's output folder (a local folder or the
    bucket's prefix, read from the server directly so that the proxy does not count it)."""

    def __init__(self, local: Path | None = None, client=None):
        self.local, self.client = local, client

    def keys(self) -> set[str]:
        if self.local is not None:
            if not self.local.exists():
                return set()
            return {p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file()}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/")
        return {o["Key"][len(PREFIX) + 1 :] for page in pages for o in page.get("Contents", [])}

    def json(self, key: str):
        if self.local is not None:
            return json.loads((self.local / key).read_text(encoding="utf-8"))
        body = self.client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Body"].read()
        return json.loads(body)

    def rows(self, stage: str) -> int | None:
        """The output rows of a stage from its summaries; None for a stage that writes no rows
        (student: a results table; report: one HTML file) or when no summary is there."""
        try:
            return self._rows(stage, self.keys())
        except (KeyError, TypeError, ValueError, OSError):
            return None

    def _rows(self, stage: str, keys: set[str]) -> int | None:
        if stage == "ingest":  # examples/<split>/_summary.json: the kept rows
            found = [k for k in keys if k.startswith("examples/") and k.endswith("/_summary.json")]
            return sum(self.json(k)["kept"] for k in found) if found else None
        if stage == "augment":  # augmented/<split>/<method>/_summary.json
            found = [k for k in keys if k.startswith("augmented/") and k.endswith("/_summary.json")]
            return sum(self.json(k)["rows_out"] for k in found) if found else None
        if stage == "teacher":  # teacher/_summary.json: the rows of each cached input
            if "teacher/_summary.json" not in keys:
                return None
            return sum(s["rows"] for s in self.json("teacher/_summary.json")["inputs"].values())
        return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="cut every input split to this many sentences")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one stage may take")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))  # tests/ is not installed
    from tests.s3 import S3Server
    from tests.s3_proxy import FaultProxy

    work = Path(tempfile.mkdtemp(prefix="kd-object-store-"))
    server = S3Server()
    proxy = FaultProxy(server.endpoint).start()
    direct = server.client()
    direct.create_bucket(Bucket=BUCKET)
    job = str(_job_file(args.limit, work))
    local_dir = work / "local"
    s3_dir = f"s3://{BUCKET}/{PREFIX}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    envs = {"local": base_env, "s3": {**base_env, **server.env(proxy.endpoint)}}
    outputs = {"local": _Outputs(local=local_dir), "s3": _Outputs(client=direct)}
    dirs = {"local": str(local_dir), "s3": s3_dir}
    py = [sys.executable, "-m", "pipeline"]

    def run(where: str, command: str, again: bool = False) -> dict:
        before = outputs[where].keys()
        proxy.reset_stats()
        started = time.perf_counter()
        argv = [*py, command, job, "--output-dir", dirs[where]]
        try:
            done = subprocess.run(argv, cwd=ROOT, env=envs[where], capture_output=True, text=True, timeout=args.timeout)
            failed = _reason(done.stderr) if done.returncode != 0 else None
            log = done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            failed, log = f"timed out after {args.timeout:.0f} s", f"{exc.stdout or ''}{exc.stderr or ''}"
        seconds = time.perf_counter() - started
        stats = proxy.stats()
        if failed:
            LOGS.mkdir(parents=True, exist_ok=True)
            (LOGS / f"{where}-{command}{'-again' if again else ''}.log").write_text(
                " ".join(argv) + "\n\n" + log, encoding="utf-8"
            )
        result = {
            "seconds": seconds,
            "failed": failed,
            "stats": stats,
            "new_objects": len(outputs[where].keys() - before),
        }
        note = f"failed: {failed}" if failed else "ok"
        extra = f", {stats['requests']:,} S3 requests" if where == "s3" else ""
        name = f"{command} again" if again else command
        print(f"[object_store] {where} {name}: {seconds:.1f} s{extra}, {note}", flush=True)
        return result

    results: dict[str, dict[str, dict]] = {"local": {}, "s3": {}}
    try:
        print(f"[object_store] job {job}, S3 through {proxy.endpoint} (moto at {server.endpoint})", flush=True)
        for stage in STAGES:
            for where in ("local", "s3"):  # side by side: both see the same load on the machine
                results[where][stage] = run(where, stage)
        reruns: dict[str, dict[str, dict]] = {"local": {}, "s3": {}}
        for stage in STAGES:  # stage by stage, so that a stage that fails hides no other's figures
            for where in ("local", "s3"):
                reruns[where][stage] = run(where, stage, again=True)
        rows = {stage: outputs["s3"].rows(stage) for stage in STAGES}
        rows_local = {stage: outputs["local"].rows(stage) for stage in STAGES}
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def per_m(value: float, n: int | None) -> str:
        return f"{value / n * 1e6:,.0f}" if n else "-"

    def mb(n: int) -> str:
        return f"{n / 1e6:,.2f}"

    print("\n| stage | local s | S3 s | S3 / local | S3 requests | MB sent | MB received | objects written |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    total = {"local": 0.0, "s3": 0.0}
    for stage in STAGES:
        loc, s3 = results["local"][stage], results["s3"][stage]
        total["local"] += loc["seconds"]
        total["s3"] += s3["seconds"]
        if s3["failed"]:
            local_s = f"{loc['seconds']:.1f}" + (f" (failed: {loc['failed']})" if loc["failed"] else "")
            print(f"| {stage} | {local_s} | failed: {s3['failed']} | - | - | - | - | - |")
            continue
        st = s3["stats"]
        local_s = f"failed: {loc['failed']}" if loc["failed"] else f"{loc['seconds']:.1f}"
        ratio = "-" if loc["failed"] else f"{s3['seconds'] / loc['seconds']:.2f}"
        print(
            f"| {stage} | {local_s} | {s3['seconds']:.1f} | {ratio} | {st['requests']:,} | "
            f"{mb(st['request_bytes'])} | {mb(st['response_bytes'])} | {s3['new_objects']:,} |"
        )
    print(
        f"| all stages | {total['local']:.1f} | {total['s3']:.1f} | {total['s3'] / total['local']:.2f} | "
        f"{sum(r['stats']['requests'] for r in results['s3'].values()):,} | "
        f"{mb(sum(r['stats']['request_bytes'] for r in results['s3'].values()))} | "
        f"{mb(sum(r['stats']['response_bytes'] for r in results['s3'].values()))} | "
        f"{sum(r['new_objects'] for r in results['s3'].values()):,} |"
    )

    print(
        "\n| stage | output rows (S3) | requests / M rows | MB sent / M rows | MB received / M rows | objects / M rows |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for stage in STAGES:
        s3 = results["s3"][stage]
        n = rows[stage]
        if s3["failed"]:
            print(f"| {stage} | failed: {s3['failed']} | - | - | - | - |")
            continue
        st = s3["stats"]
        shown = f"{n:,}" if n is not None else "- (no rows)"
        if n is not None and rows_local[stage] not in (None, n):
            shown += f" (local: {rows_local[stage]:,})"
        print(
            f"| {stage} | {shown} | {per_m(st['requests'], n)} | {per_m(st['request_bytes'] / 1e6, n)} | "
            f"{per_m(st['response_bytes'] / 1e6, n)} | {per_m(s3['new_objects'], n)} |"
        )

    print("\n| stage | S3 requests by operation |\n| --- | --- |")
    for stage in STAGES:
        s3 = results["s3"][stage]
        ops = sorted(s3["stats"]["by_operation"].items(), key=lambda kv: -kv[1])
        print(f"| {stage} | {', '.join(f'{op} {n:,}' for op, n in ops) or '-'} |")

    print(
        "\n| re-run, everything reused | local s | S3 s | S3 requests | by operation |\n| --- | --- | --- | --- | --- |"
    )
    for stage in STAGES:
        loc, s3 = reruns["local"][stage], reruns["s3"][stage]
        ops = sorted(s3["stats"]["by_operation"].items(), key=lambda kv: -kv[1])
        local_s = f"failed: {loc['failed']}" if loc["failed"] else f"{loc['seconds']:.1f}"
        s3_s = f"failed: {s3['failed']}" if s3["failed"] else f"{s3['seconds']:.1f}"
        print(
            f"| {stage} | {local_s} | {s3_s} | {s3['stats']['requests']:,} | "
            f"{', '.join(f'{op} {n:,}' for op, n in ops) or '-'} |"
        )
    print(
        f"| all stages | {sum(r['seconds'] for r in reruns['local'].values()):.1f} | "
        f"{sum(r['seconds'] for r in reruns['s3'].values()):.1f} | "
        f"{sum(r['stats']['requests'] for r in reruns['s3'].values()):,} | |"
    )
    if any(r["failed"] for runs in (results, reruns) for where in runs.values() for r in where.values()):
        print(f"\nlogs of the failed commands: {LOGS}")


if __name__ == "__main__":
    main()
