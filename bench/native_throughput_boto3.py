#!/usr/bin/python3
"""The boto3 baseline of bench/native_throughput: a plain get_records loop.

Reads the bench server's shards one after another from TRIM_HORIZON, counting records and
the bytes of their Data (boto3 has already base64-decoded it), until --max records or the
end of every shard. Prints the same RESULT line as kclpp's readers: the seconds and CPU
seconds (getrusage RUSAGE_SELF, user + sys) of the reading loop only (imports and client
creation excluded), and VmHWM. Use Debian's python3-boto3: /usr/bin/python3.
"""
import argparse
import resource
import sys
import time

import boto3


def vm_hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", default="bench")
    ap.add_argument("--max", type=int, default=0, help="stop after this many records (0: all)")
    args = ap.parse_args()
    client = boto3.client(
        "kinesis",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDBENCHMARK",
        aws_secret_access_key="bench-secret",
    )
    records = 0
    nbytes = 0
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    shards = client.list_shards(StreamName=args.stream)["Shards"]
    done = False
    for shard in shards:
        it = client.get_shard_iterator(
            StreamName=args.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            reply = client.get_records(ShardIterator=it, Limit=10000)
            for record in reply["Records"]:
                nbytes += len(record["Data"])
            records += len(reply["Records"])
            it = reply.get("NextShardIterator")
            if args.max and records >= args.max:
                done = True
                break
        if done:
            break
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    print(
        f"RESULT records={records} bytes={nbytes} seconds={seconds:.6f} cpu={cpu:.6f} hwm_kb={vm_hwm_kb()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
