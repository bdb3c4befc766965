#!/usr/bin/python3
"""A multilang child for `kclpp conformance`'s tests (tests/integration/conformance_test.cpp).

Without flags it is conformant (docs/kcl-protocol.md): it checkpoints each batch at its last
record with the sub-sequence number, retries ThrottlingException, gives up on other errors,
checkpoints at SHARD_END in shardEnded and on a KCL 1.x TERMINATE, and exits on stdin EOF.
Each flag adds one misbehaviour, named after what it breaks:

  --crash-on-initialize        exit 1 on initialize
  --wrong-status               answer processRecords with status for "initialize"
  --checkpoint-beyond          checkpoint past the last record delivered
  --kpl-no-sub                 checkpoint without subSequenceNumber
  --no-retry                   give up on ThrottlingException
  --retry-forever              retry every checkpoint error, forever
  --no-checkpoint-at-end       no checkpoint in shardEnded or shutdown/TERMINATE
  --checkpoint-on-lease-lost   try to checkpoint in leaseLost
  --exit-on-shutdown-requested exit after answering shutdownRequested
  --ignore-eof                 keep running after stdin closes
  --no-kcl1                    ignore KCL 1.x's shutdown message (no status)
  --stray-stdout               print a line of text on stdout before each status
  --glued-stdout               print text without a newline before the processRecords status
  --extra-key                  an extra key in every status
  --slow MS                    sleep MS before each processRecords status
"""
import json
import sys
import time

FLAGS = set()
SLOW_MS = 0
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--slow":
        SLOW_MS = int(args.pop(0))
    else:
        FLAGS.add(a)

out = sys.stdout


def send(message, prefix=""):
    out.write(prefix + "\n" + json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def read_message():
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        if line.strip():
            return json.loads(line)


def checkpoint_once(seq, sub):
    message = {"action": "checkpoint", "sequenceNumber": seq}
    if "--kpl-no-sub" not in FLAGS:
        message["subSequenceNumber"] = sub
    send(message)
    reply = read_message()
    return None if reply is None else reply.get("error")


def checkpoint(seq=None, sub=None):
    for _ in range(5):
        error = checkpoint_once(seq, sub)
        if error is None:
            return
        if "--retry-forever" in FLAGS:
            while checkpoint_once(seq, sub) is not None:
                pass
            return
        if error != "ThrottlingException" or "--no-retry" in FLAGS:
            sys.stderr.write("checkpoint failed: %s, giving up\n" % error)
            return
        time.sleep(0.01)


def status(action, message):
    reply = {"action": "status", "responseFor": action}
    if "--extra-key" in FLAGS:
        reply["extra"] = 1
    prefix = ""
    if "--stray-stdout" in FLAGS:
        out.write("hello from the child\n")
    if "--glued-stdout" in FLAGS and action == "processRecords":
        prefix = "progress: "
        out.write(prefix)
        prefix = ""
        out.write(json.dumps(reply, separators=(",", ":")) + "\n")
        out.flush()
        return
    send(reply, prefix)


def process_records(message):
    records = message.get("records") or []
    if records:
        last = records[-1]
        seq = last["sequenceNumber"]
        if "--checkpoint-beyond" in FLAGS:
            seq = str(int(seq) + 1000)
        checkpoint(seq, last.get("subSequenceNumber"))
    if SLOW_MS:
        time.sleep(SLOW_MS / 1000.0)
    status("initialize" if "--wrong-status" in FLAGS else "processRecords", message)


def main():
    while True:
        message = read_message()
        if message is None:
            break
        action = message.get("action")
        if action == "initialize":
            if "--crash-on-initialize" in FLAGS:
                sys.stderr.write("bad_child: crashing on initialize as asked\n")
                sys.exit(1)
            status(action, message)
        elif action == "processRecords":
            process_records(message)
        elif action == "shardEnded" or (action == "shutdown" and message.get("reason") == "TERMINATE"):
            if action == "shutdown" and "--no-kcl1" in FLAGS:
                continue
            if "--no-checkpoint-at-end" not in FLAGS:
                checkpoint()
            status(action, message)
        elif action == "shutdown":
            if "--no-kcl1" in FLAGS:
                continue
            status(action, message)
        elif action == "leaseLost":
            if "--checkpoint-on-lease-lost" in FLAGS:
                checkpoint()
            status(action, message)
        elif action == "shutdownRequested":
            checkpoint()
            status(action, message)
            if "--exit-on-shutdown-requested" in FLAGS:
                sys.exit(0)
        else:
            sys.stderr.write("bad_child: unknown action %r\n" % action)
    if "--ignore-eof" in FLAGS:
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
