"""bench/archive_throughput: the Python writer and reader of py-triton's design, the baseline.

Run by kclpp_bench_archive_throughput (Debian's /usr/bin/python3, python3-snappy,
python3-msgpack, python3-crc32c):

    archive_throughput.py RECORDS.msgpack ARCHIVE.tri

RECORDS.msgpack is the benchmark's records, back to back; ARCHIVE.tri the same records as
kclpp wrote them. It prints READY once loaded, then runs one kind per line read from stdin
("python-write" or "python-read") and answers with one line:

    RESULT kind=K seconds=S cpu=C bytes=B records=N

(seconds: wall clock; cpu: process CPU time).

python-write: py-triton's StreamArchiveWriter: the packed records are appended to a 1 MiB
buffer; each full buffer (and the last one) goes through one StreamCompressor.add_chunk
(64 KiB chunks, compressed unless snappy saves < 12.5 %, one stream identifier per file).
The input is the packed records (bytes objects), like kclpp's writer gets msgpack bytes;
the output pieces are kept in a list (py-triton writes each to its file), not joined.

python-read: py-triton's decoder: StreamDecompressor.decompress over 8 KiB reads (its S3
reads), the output fed to msgpack.Unpacker(raw=False), which yields one dict per record.

bytes is the msgpack input (write) or output (read) size; MB = 10^6 bytes.
"""
import sys
import time

import crc32c
import msgpack
import snappy
import snappy.snappy

# Debian's python3-snappy stream (de)compressor fails on Python 3.11 in its own CRC-32C
# helper ("PY_SSIZE_T_CLEAN macro must be defined"): use python3-crc32c's (SSE4.2 in C).
snappy.snappy._crc32c = crc32c.crc32c

BUFFER = 1 << 20  # py-triton's StreamArchiveWriter flush size
READ = 8192       # py-triton's S3 read size


def write(packed):
    compressor = snappy.StreamCompressor()
    out = []
    buf = []
    size = 0
    for p in packed:
        buf.append(p)
        size += len(p)
        if size >= BUFFER:
            out.append(compressor.add_chunk(b"".join(buf)))
            buf = []
            size = 0
    if buf:
        out.append(compressor.add_chunk(b"".join(buf)))
    return out  # the pieces py-triton writes to its file one by one


def read(archive):
    decompressor = snappy.StreamDecompressor()
    unpacker = msgpack.Unpacker(raw=False)
    records = 0
    for i in range(0, len(archive), READ):
        unpacker.feed(decompressor.decompress(archive[i:i + READ]))
        for record in unpacker:
            records += 1
    decompressor.flush()
    return records


def main():
    records_path, archive_path = sys.argv[1], sys.argv[2]
    with open(records_path, "rb") as f:
        raw = f.read()
    with open(archive_path, "rb") as f:
        archive = f.read()
    # The packed records one by one (outside the timing).
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    packed = [msgpack.packb(r, use_bin_type=True) for r in unpacker]
    total = sum(len(p) for p in packed)
    if b"".join(packed) != raw:
        sys.exit("re-packed records differ from the input")
    print("READY", flush=True)
    # One command per line from the driver, so that its runs interleave with kclpp's.
    for line in sys.stdin:
        kind = line.strip()
        t0, c0 = time.perf_counter(), time.process_time()
        if kind == "python-write":
            n = len(packed)
            out = write(packed)
            extra = f" compressed={sum(len(p) for p in out)}"
        elif kind == "python-read":
            n = read(archive)
            extra = ""
        else:
            sys.exit(f"unknown command {kind!r}")
        t1, c1 = time.perf_counter(), time.process_time()
        print(f"RESULT kind={kind} seconds={t1 - t0:.6f} cpu={c1 - c0:.6f} bytes={total} records={n}{extra}",
              flush=True)


if __name__ == "__main__":
    main()
