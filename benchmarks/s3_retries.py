"""Reads of small objects through a throttling S3 (503 SlowDown on a share of the requests), with one
S3 filesystem for the whole run, under the AWS SDK's two retry strategies side by side.

    python -m benchmarks.s3_retries [--reads 300] [--fail-rate 0.3]

Why ``pipeline.storage`` uses the default strategy: the "standard" one keeps a retry quota per
client, which a throttling store drains, after which errors reach the caller unretried.
"""

from __future__ import annotations

import argparse
import os

from pyarrow import fs as pafs

from tests.s3 import REGION, S3Server, apply_env, restore_env
from tests.s3_proxy import FaultProxy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reads", type=int, default=300)
    p.add_argument("--fail-rate", type=float, default=0.3)
    p.add_argument(
        "--size", type=int, default=4096, help="bytes per object (under about 250 the SDK retries no 503 at all)"
    )
    args = p.parse_args()
    server = S3Server()
    old = apply_env(server.env())
    try:
        server.bucket("retries")
        server.client().put_object(Bucket="retries", Key="small", Body=os.urandom(args.size))
        print("| strategy | reads | failed | 503s answered |\n| --- | --- | --- | --- |")
        for name, strategy in (
            ("default (pipeline.storage)", pafs.AwsDefaultS3RetryStrategy(max_attempts=8)),
            ("standard", pafs.AwsStandardS3RetryStrategy(max_attempts=8)),
        ):
            with FaultProxy(server.endpoint, fail_rate=args.fail_rate, seed=3) as proxy:
                host = proxy.endpoint.removeprefix("http://")
                fs = pafs.S3FileSystem(endpoint_override=host, scheme="http", region=REGION, retry_strategy=strategy)
                failed = 0
                for _ in range(args.reads):
                    try:
                        with fs.open_input_file("retries/small") as fh:
                            fh.read()
                    except OSError:
                        failed += 1
                slowdowns = proxy.stats()["faults"]["slowdown"]
                del fs
            print(f"| {name} | {args.reads} | {failed} | {slowdowns} |")
    finally:
        restore_env(old)
        server.stop()


if __name__ == "__main__":
    main()
