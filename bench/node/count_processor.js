/*
 * The Node baseline of bench/protocol_throughput: a record processor on the official
 * aws-kcl package (2.x API) doing the same work as bench/count_child.cpp:
 *   - base64-decode every record (Buffer.from(data, 'base64')) and sum the decoded lengths,
 *   - checkpoint at the record every CHECKPOINT_EVERY records (waiting for the response,
 *     as the KCL protocol requires),
 *   - checkpoint (null = SHARD_END) at shardEnded and log the totals to stderr.
 * Run by the driver as `node bench/node/count_processor.js`; aws-kcl resolves from the
 * repository's node_modules. stdout belongs to the protocol: log to stderr only.
 */
'use strict';

const kcl = require('aws-kcl');

const CHECKPOINT_EVERY = 10000;

function fail(message) {
  process.stderr.write('count_processor.js: ' + message + '\n');
  process.exit(1);
}

const processor = {
  records: 0,
  bytes: 0,
  checkpoints: 0,

  initialize: function(input, completeCallback) {
    completeCallback();
  },

  processRecords: function(input, completeCallback) {
    const records = input.records || [];
    const checkpointer = input.checkpointer;
    let i = 0;
    // Resumable loop: a checkpoint mid-batch suspends it until the daemon's response.
    const step = () => {
      while (i < records.length) {
        const record = records[i++];
        this.bytes += Buffer.from(record.data, 'base64').length;
        this.records += 1;
        if (this.records % CHECKPOINT_EVERY === 0) {
          checkpointer.checkpoint(record.sequenceNumber, (err) => {
            if (err) fail('checkpoint failed: ' + err);
            this.checkpoints += 1;
            step();
          });
          return;
        }
      }
      completeCallback();
    };
    step();
  },

  leaseLost: function(input, completeCallback) {
    completeCallback();
  },

  shardEnded: function(input, completeCallback) {
    input.checkpointer.checkpoint((err) => {
      if (err) fail('shard-end checkpoint failed: ' + err);
      this.checkpoints += 1;
      process.stderr.write('count_processor.js: records=' + this.records + ' bytes=' + this.bytes +
                           ' checkpoints=' + this.checkpoints + '\n');
      completeCallback();
    });
  },

  shutdownRequested: function(input, completeCallback) {
    input.checkpointer.checkpoint((err) => {
      if (err) process.stderr.write('count_processor.js: checkpoint failed: ' + err + '\n');
      completeCallback();
    });
  },
};

kcl(processor).run();
