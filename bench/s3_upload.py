"""Benchmark: topoff's S3 multipart writer against boto3's own transfer manager.

    ./run bench s3_upload [--size-mb 1024] [--repeat 3]

Starts moto's S3 server (``moto_server``) in its own process on loopback and streams the
same ``--size-mb`` of incompressible bytes to it, interleaved ``--repeat`` times, each
upload in a fresh process (so that its peak memory and CPU are its own):

* topoff: ``S3Store.write()``, the streaming writer exports and backups push into
  (8 MiB parts, 4 in flight);
* boto3: ``client.upload_fileobj()`` from a readable stream with
  ``TransferConfig(multipart_chunksize=8 MiB, max_concurrency=4)``, what ``aws s3 cp -``
  does.

Reported: median seconds and MB/s, client CPU seconds, peak RSS of the uploading process.
The uploaded object is checked (size) and deleted after each run.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from usage import median

BLOCK = 1 << 20
MiB = 1 << 20
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
       "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


class Source:
    """``size`` bytes: one random MiB over and over (read side, for boto3)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(BLOCK)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        if n <= 0:
            return b""
        out = (self.block * (n // BLOCK + 1))[:n] if n > BLOCK else self.block[:n]
        self.left -= n
        return out


def child(kind: str, endpoint: str, bucket: str, size: int) -> None:
    started = time.monotonic()
    if kind == "topoff":
        from topoff.stores.base import StoreOptions
        from topoff.stores.s3 import S3Store

        store = S3Store(bucket, options=StoreOptions(s3_endpoint_url=endpoint))
        src = Source(size)
        with store.write("bench.bin") as f:
            while block := src.read(BLOCK):
                f.write(block)
    else:
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.upload_fileobj(Source(size), bucket, "bench.bin",
                              Config=TransferConfig(multipart_threshold=8 * MiB,
                                                    multipart_chunksize=8 * MiB,
                                                    max_concurrency=4))
    seconds = time.monotonic() - started
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{seconds} {ru.ru_maxrss / 1024} {ru.ru_utime + ru.ru_stime}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = args.size_mb * MiB
    if args.child:
        child(args.child, args.endpoint, args.bucket, size)
        return
    os.environ.update(ENV)
    port = free_port()
    server_bin = Path(sys.executable).parent / "moto_server"
    server = subprocess.Popen([str(server_bin), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        client: Any = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for _ in range(100):
            try:
                client.create_bucket(Bucket="bench")
                break
            except Exception:
                time.sleep(0.1)
        results: dict[str, list[tuple[float, float, float]]] = {"topoff": [], "boto3": []}
        for i in range(args.repeat):
            for kind in (("topoff", "boto3") if i % 2 == 0 else ("boto3", "topoff")):
                done = subprocess.run([sys.executable, __file__, "--child", kind, "--endpoint",
                                       endpoint, "--bucket", "bench", "--size-mb",
                                       str(args.size_mb)], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{kind} upload failed:\n{done.stderr}")
                out = done.stdout.split()
                seconds, peak, cpu = (float(x) for x in out)
                head = client.head_object(Bucket="bench", Key="bench.bin")
                assert head["ContentLength"] == size, head["ContentLength"]
                client.delete_object(Bucket="bench", Key="bench.bin")
                results[kind].append((seconds, peak, cpu))
                print(f"# run {i + 1}: {kind} {seconds:.2f}s {peak:.0f} MB", flush=True)
    finally:
        server.terminate()
        server.wait()
    command = " ".join(["./run bench s3_upload", *sys.argv[1:]])
    print(f"\n{os.cpu_count()} cores; {args.size_mb} MiB to moto_server on loopback; median "
          f"of {args.repeat} interleaved runs; command: {command}\n")
    print("| uploader | seconds (median) | MB/s | ratio | client CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    base = median([r[0] for r in results["boto3"]])
    for kind, label in (("topoff", "topoff S3Store.write (8 MiB parts, 4 in flight)"),
                        ("boto3", "boto3 upload_fileobj (TransferConfig 8 MiB, 4 threads)")):
        s = median([r[0] for r in results[kind]])
        print(f"| {label} | {s:.2f} | {size / 1e6 / s:.0f} | {s / base:.2f}x | "
              f"{median([r[2] for r in results[kind]]):.2f} | "
              f"{max(r[1] for r in results[kind]):.0f} |")


if __name__ == "__main__":
    main()
