"""Download throughput: fwbuild.fetch.fetch() against curl, through the same local HTTP server.

    python bench/bench_download.py [--size-mib N] [--runs N] [--workdir DIR]

prints {"download_s": ..., "curl_s": ..., "download_ratio": curl_s / download_s} as JSON; a ratio
of 1.0 means fetch() (streaming, sha256 while writing, fsync, atomic rename) is as fast as
``curl -s -o``. Target: >= 0.8.
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

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "tests", _ROOT):  # the same import roots as bench/run.py and the tests
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from support.httpserver import FaultServer  # noqa: E402

from fwbuild.fetch import FetchSettings, RemoteFile, fetch, file_digest  # noqa: E402

FILENAME = "payload.bin"


def _make_payload(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            # Vary the blocks so the content is not a trivially repeating pattern.
            block = block[1:] + block[:1]


def _time_fetch(url: str, remote: RemoteFile, workdir: Path, run: int) -> float:
    dl_dir = workdir / f"dl-{run}"
    shutil.rmtree(dl_dir, ignore_errors=True)
    settings = FetchSettings(dl_dir=dl_dir, progress="none", retries=0)
    t0 = time.perf_counter()
    path = fetch(remote, settings, package="bench")
    elapsed = time.perf_counter() - t0
    if path.stat().st_size != (workdir / "srv" / FILENAME).stat().st_size:
        raise RuntimeError("fetch() returned a file of the wrong size")
    shutil.rmtree(dl_dir, ignore_errors=True)
    return elapsed


def _time_curl(url: str, workdir: Path, run: int) -> float:
    out = workdir / f"curl-{run}.bin"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", str(out), url], check=True)
    elapsed = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    return elapsed


def measure(workdir: Path, *, size_mib: int = 200, runs: int = 3) -> dict[str, float]:
    """Best-of-``runs`` wall time of fetch() and of curl for a ``size_mib`` MiB file."""
    workdir = Path(workdir)
    srv_dir = workdir / "srv"
    srv_dir.mkdir(parents=True, exist_ok=True)
    payload = srv_dir / FILENAME
    if not payload.is_file() or payload.stat().st_size != size_mib << 20:
        _make_payload(payload, size_mib << 20)
    remote = RemoteFile(
        filename=FILENAME, urls=(), digests={"sha256": file_digest(payload, "sha256")}
    )
    fetch_times: list[float] = []
    curl_times: list[float] = []
    with FaultServer(srv_dir) as srv:
        url = f"{srv.url}/{FILENAME}"
        remote = RemoteFile(remote.filename, (url,), remote.digests)
        # Interleave the runs so that both see the same machine conditions.
        for run in range(runs):
            curl_times.append(_time_curl(url, workdir, run))
            fetch_times.append(_time_fetch(url, remote, workdir, run))
    download_s, curl_s = min(fetch_times), min(curl_times)
    return {
        "download_s": round(download_s, 4),
        "curl_s": round(curl_s, 4),
        "download_ratio": round(curl_s / download_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.workdir is not None:
        result = measure(args.workdir, size_mib=args.size_mib, runs=args.runs)
    else:
        with tempfile.TemporaryDirectory(prefix="fwbuild-bench-dl-") as tmp:
            result = measure(Path(tmp), size_mib=args.size_mib, runs=args.runs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
