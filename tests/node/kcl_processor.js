'use strict';
// A multilang record processor built on the official aws-kcl npm library (someone else's
// implementation of the child side of the protocol), driven by kcl::ChildProcess in
// tests/integration/child_process_test.cpp and by `kclpp daemon` in
// tests/integration/daemon_test.cpp. With KCLPP_NODE_LOG_IDS=1 every event also carries the
// process id, the shard id and `ns`, the time on CLOCK_MONOTONIC (process.hrtime, the
// clock of the test's std::chrono::steady_clock), because a daemon runs one child per shard
// and they all append to the same KCLPP_NODE_LOG file (one appendFileSync per line,
// O_APPEND), and the fleet tests order events across the logs of several daemons.
//
// Every event is appended as one JSON line to the file named by KCLPP_NODE_LOG, so the
// test can assert what the child saw. Behaviour:
//   initialize        -> logged
//   processRecords    -> logged; checkpoints at the last record's sequence number, retrying
//                        up to 3 times on ThrottlingException (retries belong to the child)
//   shutdownRequested -> checkpoint() with no sequence number
//   shardEnded        -> checkpoint() with no sequence number (records SHARD_END)
//   leaseLost         -> logged; no checkpoint possible
// Nothing is printed to stdout: it belongs to the protocol.

const fs = require('fs');
const kcl = require('aws-kcl');

const logFile = process.env.KCLPP_NODE_LOG;
const withIds = process.env.KCLPP_NODE_LOG_IDS === '1';
let shardId = null;

function record(event) {
  if (withIds) {
    event.pid = process.pid;
    event.shard = shardId;
    // A Number is exact to the nanosecond below 2^53 ns (104 days of uptime).
    event.ns = Number(process.hrtime.bigint());
  }
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(event) + '\n');
  process.stderr.write('kcl_processor.js: ' + JSON.stringify(event) + '\n');
}

function checkpointWithRetry(checkpointer, sequenceNumber, attempt, done) {
  const onResult = function (err, echoed) {
    record({ event: 'checkpointResult', sequenceNumber: sequenceNumber === undefined ? null : sequenceNumber,
             attempt: attempt, error: err || null, echoed: echoed === undefined ? null : echoed });
    if (err === 'ThrottlingException' && attempt < 3) {
      checkpointWithRetry(checkpointer, sequenceNumber, attempt + 1, done);
      return;
    }
    done();
  };
  if (sequenceNumber === undefined) {
    checkpointer.checkpoint(onResult);
  } else {
    checkpointer.checkpoint(sequenceNumber, onResult);
  }
}

const processor = {
  initialize: function (input, completeCallback) {
    shardId = input.shardId;
    record({ event: 'initialize', shardId: input.shardId, sequenceNumber: input.sequenceNumber,
             subSequenceNumber: input.subSequenceNumber });
    completeCallback();
  },

  processRecords: function (input, completeCallback) {
    const records = (input.records || []).map(function (r) {
      return { data: Buffer.from(r.data || '', 'base64').toString('utf8'), partitionKey: r.partitionKey,
               sequenceNumber: r.sequenceNumber, subSequenceNumber: r.subSequenceNumber,
               approximateArrivalTimestamp: r.approximateArrivalTimestamp };
    });
    record({ event: 'processRecords', records: records, millisBehindLatest: input.millisBehindLatest });
    if (records.length === 0) {
      completeCallback();
      return;
    }
    const last = records[records.length - 1].sequenceNumber;
    checkpointWithRetry(input.checkpointer, last, 1, completeCallback);
  },

  shutdownRequested: function (input, completeCallback) {
    record({ event: 'shutdownRequested' });
    checkpointWithRetry(input.checkpointer, undefined, 1, completeCallback);
  },

  leaseLost: function (input, completeCallback) {
    record({ event: 'leaseLost' });
    completeCallback();
  },

  shardEnded: function (input, completeCallback) {
    record({ event: 'shardEnded' });
    checkpointWithRetry(input.checkpointer, undefined, 1, completeCallback);
  }
};

process.on('exit', function (code) {
  record({ event: 'exit', code: code });
});

kcl(processor).run();
