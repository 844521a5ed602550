"""`python -m loadtests.attachments`: concurrent uploads of large files to one gateway.

20 clients each upload a different 20 MiB PDF at the same time (raw bodies, over loopback) to
one `messaging serve` process storing in a local folder. Printed: the throughput (MiB/s of
files accepted), each upload's latency, and the gateway's resident memory sampled every 10 ms:
its peak growth over the idle, warmed-up process. The target is a growth under 64 MiB however
large or many the uploads (bodies are streamed to disk, checks run a few at a time).

The files are real PDFs: a page whose image is a 20 MiB uncompressed stream (like a scan), each
filled with different random bytes so that no two are stored as one.

    python -m loadtests.attachments [--uploads 20] [--mib 20] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass

import httpx

from loadtests.common import bench_env, import_roster, log, make_roster, rss_bytes

MiB = 1024 * 1024
TARGET_GROWTH_MIB = 64


def scan_like_pdf(size: int, seed: int) -> bytes:
    """A valid one-page PDF of exactly `size` bytes whose page shows one grey image stored raw
    (8 bits per pixel, 1,024 pixels wide); a comment line takes up the bytes left over."""
    rng = random.Random(seed)
    width = 1024
    height = max(1, (size - 2048) // width)
    pixels = rng.randbytes(width * height)

    def build(filler: int) -> bytes:
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>",
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
            b" /BitsPerComponent 8 /Length %d >>\nstream\n"
            % (width, height, len(pixels))
            + pixels
            + b"\nendstream",
            b"<< /Length 33 >>\nstream\nq 612 0 0 792 0 0 cm /Im1 Do Q\nendstream",
        ]
        out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n%" + b"x" * filler + b"\n"
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objects) + 1,
            xref,
        )
        return out

    filler = 0
    for _ in range(4):
        data = build(filler)
        if len(data) == size:
            return data
        filler += size - len(data)
    raise RuntimeError("could not size the PDF")


class RssSampler:
    """Samples one process's resident memory in a thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    uploads: int
    mib_each: int
    seconds: float
    latencies: list[float]
    rss_idle: int
    rss_warm: int
    rss_peak: int

    @property
    def mib_per_s(self) -> float:
        return self.uploads * self.mib_each / self.seconds

    @property
    def growth_mib(self) -> float:
        return (self.rss_peak - self.rss_warm) / MiB


async def _upload(client: httpx.AsyncClient, token: str, data: bytes) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/api/attachments",
        content=data,
        headers={"Authorization": f"Bearer {token}", "X-Filename": "scan.pdf"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text[:300]}")
    return time.perf_counter() - started


async def _run(base_url: str, tokens: list[str], files: list[bytes]) -> tuple[float, list[float]]:
    limits = httpx.Limits(max_connections=len(files) + 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        started = time.perf_counter()
        latencies = await asyncio.gather(
            *(_upload(client, t, f) for t, f in zip(tokens, files, strict=True))
        )
        return time.perf_counter() - started, list(latencies)


def run(uploads: int, mib: int) -> Result:
    size = mib * MiB
    log(f"making {uploads} PDFs of {mib} MiB")
    files = [scan_like_pdf(size, seed) for seed in range(uploads + 1)]
    with bench_env() as bench:
        gateway = bench.start_gateway("gateway")
        roster = make_roster(teachers=uploads, parents=0)
        import_roster(bench, gateway, roster)
        tokens = [bench.token(t) for t in roster.teachers]
        rss_idle = rss_bytes(gateway.pid)
        log("warming up: one upload of the same size")
        asyncio.run(_run(gateway.url, tokens[:1], files[-1:]))
        time.sleep(0.5)
        rss_warm = rss_bytes(gateway.pid)
        log(f"{uploads} concurrent uploads")
        with RssSampler(gateway.pid) as sampler:
            seconds, latencies = asyncio.run(_run(gateway.url, tokens, files[:uploads]))
        bench.stop_server(gateway)
    return Result(uploads, mib, seconds, latencies, rss_idle, rss_warm, sampler.peak)


def report(r: Result) -> None:
    ordered = sorted(r.latencies)
    print(f"attachments: {r.uploads} concurrent uploads of {r.mib_each} MiB to one gateway")
    print(f"  throughput        {r.mib_per_s:8.1f} MiB/s ({r.seconds:.2f} s for all)")
    print(f"  latency           median {statistics.median(ordered):.2f} s, max {ordered[-1]:.2f} s")
    print(
        f"  gateway RSS       idle {r.rss_idle / MiB:.0f} MiB, warm {r.rss_warm / MiB:.0f} MiB, "
        f"peak {r.rss_peak / MiB:.0f} MiB"
    )
    verdict = "met" if r.growth_mib < TARGET_GROWTH_MIB else "MISSED"
    print(
        f"  peak growth       {r.growth_mib:8.1f} MiB over warm "
        f"(target < {TARGET_GROWTH_MIB} MiB: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.attachments", description=__doc__)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="4 uploads of 2 MiB")
    args = parser.parse_args(argv)
    uploads, mib = (4, 2) if args.smoke else (args.uploads, args.mib)
    if not 1 <= mib <= 20:
        parser.error("--mib must be between 1 and 20 (the upload limit)")
    report(run(uploads, mib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
