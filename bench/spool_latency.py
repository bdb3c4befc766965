#!/usr/bin/python3
"""The Python baseline of bench/spool_latency: py-triton's NonblockingStream hand-off.

A PUSH socket (HWM 3500, linger 3000 ms, as py-triton sets them) sends
[struct.pack('!B64p64p', 4, stream, key), packed record] with NOBLOCK; each call
(header packing + send_multipart) is timed with perf_counter_ns. Prints one JSON line:
{"p50_ns", "p99_ns", "p999_ns", "max_ns", "sent", "dropped"}. Run by the C++ driver with
the same record bytes (hex) and pacing.
"""
import argparse
import json
import struct
import sys
import time

import zmq


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--endpoint', required=True)
    parser.add_argument('--records', type=int, default=200000)
    parser.add_argument('--warmup', type=int, default=10000)
    parser.add_argument('--rate', type=float, default=100000.0, help='sends per second, 0: back to back')
    parser.add_argument('--stream', default='events')
    parser.add_argument('--record-hex', required=True, help='the msgpack record, hex')
    args = parser.parse_args()
    data = bytes.fromhex(args.record_hex)
    stream = args.stream.encode('utf-8')
    keys = [('user-%d' % (i % 1000)).encode('utf-8') for i in range(1000)]

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 3500)
    sock.setsockopt(zmq.LINGER, 3000)
    sock.connect(args.endpoint)
    time.sleep(0.2)  # let the connection come up, as the C++ rows do

    clock = time.perf_counter_ns
    pack = struct.pack
    send = sock.send_multipart
    noblock = zmq.NOBLOCK
    period = 0 if args.rate <= 0 else int(1e9 / args.rate)
    lat = []
    dropped = 0
    total = args.warmup + args.records
    start = clock()
    for i in range(total):
        if period:
            due = start + i * period
            while clock() < due:
                pass
        t0 = clock()
        try:
            send([pack('!B64p64p', 4, stream, keys[i % 1000]), data], noblock)
        except zmq.ZMQError:
            dropped += 1
        t1 = clock()
        if i >= args.warmup:
            lat.append(t1 - t0)
    sock.close()
    ctx.term()
    lat.sort()
    n = len(lat)
    print(json.dumps({'p50_ns': lat[n // 2], 'p99_ns': lat[int(n * 0.99)], 'p999_ns': lat[int(n * 0.999)],
                      'max_ns': lat[-1], 'sent': total - dropped, 'dropped': dropped}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
