#!/usr/bin/env node
// Writes KPL aggregate test vectors made by a real producer, the aws-kinesis-agg npm
// package (pinned in the project's package.json / lock file), for kclpp's de-aggregation
// tests (tests/unit/deaggregate_test.cpp, tests/integration/deaggregate_test.cpp).
//
//   node tests/node/make_kpl_vectors.js OUTDIR [--with-split]
//
// OUTDIR receives one <name>.bin per aggregate (the exact Kinesis record data: magic +
// protobuf + MD5) and manifest.json listing, per aggregate, the user records it holds
// (partition key, explicit hash key or null, data in base64). The output is deterministic:
// the committed copy in tests/data/kpl/ is regenerated with
//
//   node tests/node/make_kpl_vectors.js tests/data/kpl
//
// --with-split adds vectors too big to commit (records that fill more than one 1 MB
// aggregate); the integration test uses it on the live run only.
'use strict';

const fs = require('fs');
const path = require('path');
const agg = require('aws-kinesis-agg');
const aggPackage = require('aws-kinesis-agg/package.json');

function usage() {
  process.stderr.write('usage: make_kpl_vectors.js OUTDIR [--with-split]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const outDir = args.find((a) => !a.startsWith('--'));
const withSplit = args.includes('--with-split');
if (!outDir || args.some((a) => a.startsWith('--') && a !== '--with-split')) usage();

// Deterministic bytes: a small LCG, so the vectors never change between runs.
function pattern(length, seed) {
  const b = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function rec(partitionKey, data, explicitHashKey) {
  const r = { partitionKey, data: Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8') };
  if (explicitHashKey !== undefined) r.explicitHashKey = explicitHashKey;
  return r;
}

const MAX_HASH_KEY = '340282366920938463463374607431768211455'; // 2^128 - 1
const MID_HASH_KEY = '170141183460469231731687303715884105728'; // 2^127

// name -> user records, in the order they are put.
const vectors = {
  // Several partition keys, repeats (the key table is deduplicated), non-ASCII keys.
  basic: [
    rec('alpha', 'first record'),
    rec('beta', 'second record'),
    rec('alpha', 'third record, same key as the first'),
    rec('ключ', 'Cyrillic partition key'),
    rec('日本語のキー', 'CJK partition key'),
    rec('emoji-🦀-key', 'astral-plane partition key'),
    rec('e\u0301', 'combining accent in the key'),
    rec('k'.repeat(256), 'a 256-character key, the Kinesis maximum'),
    rec('beta', 'último registro: UTF-8 data too'),
  ],
  // Explicit hash keys, mixed with records that have none.
  explicit_hash_keys: [
    rec('pk-1', 'ehk zero', '0'),
    rec('pk-2', 'ehk max', MAX_HASH_KEY),
    rec('pk-3', 'no ehk'),
    rec('pk-1', 'ehk mid', MID_HASH_KEY),
    rec('pk-4', 'ehk zero again (table index reused)', '0'),
    rec('pk-5', 'no ehk either'),
  ],
  // Empty and binary data, and data that itself looks like an aggregate (must not be
  // expanded again).
  binary: [
    rec('empty', Buffer.alloc(0)),
    rec('bytes', Buffer.from(Array.from({ length: 256 }, (_, i) => i))),
    rec('nul', Buffer.from([0, 0, 0, 0])),
    rec('magic', Buffer.concat([Buffer.from('f3899ac2', 'hex'), pattern(40, 7)])),
    rec('high', Buffer.from([0xff, 0xfe, 0x80, 0x7f])),
    rec('empty', Buffer.alloc(0)),
  ],
  // A 100 KB record between small ones.
  large: [
    rec('before', 'small before'),
    rec('large', pattern(100 * 1024, 42)),
    rec('after', 'small after'),
  ],
  // Many small records over 50 keys.
  many_small: Array.from({ length: 2000 }, (_, i) => rec(`pk-${i % 50}`, `r${i}`)),
  // The smallest useful aggregate.
  single: [rec('only', 'one user record')],
};
if (withSplit) {
  // 1.5 MB of records: the aggregator emits two aggregates, each close to the 1 MB limit.
  vectors.split = Array.from({ length: 1500 }, (_, i) => rec(`split-${i % 7}`, pattern(1000, i + 1)));
}

function aggregateAll(records) {
  const aggregates = [];
  const aggregator = new agg.RecordAggregator();
  let failure = null;
  aggregator.aggregateRecords(records, true, (err, encoded) => {
    if (err) failure = err;
    else aggregates.push(encoded);
  });
  if (failure) throw failure;
  return aggregates;
}

fs.mkdirSync(outDir, { recursive: true });
const manifest = {
  generator: `aws-kinesis-agg ${aggPackage.version}`,
  format: 'each file is one Kinesis record: F3 89 9A C2, protobuf AggregatedRecord, MD5',
  vectors: [],
};

for (const [name, records] of Object.entries(vectors)) {
  // aggregateRecords() mutates its input (string data becomes a Buffer), so keep our own copy
  // of the expected user records.
  const expected = records.map((r) => ({
    partition_key: r.partitionKey,
    explicit_hash_key: r.explicitHashKey === undefined ? null : r.explicitHashKey,
    data: Buffer.from(r.data).toString('base64'),
  }));
  const aggregates = aggregateAll(records.map((r) => ({ ...r })));
  const entry = { name, aggregates: [] };
  let next = 0;
  aggregates.forEach((encoded, i) => {
    const file = aggregates.length === 1 ? `${name}.bin` : `${name}_${i}.bin`;
    fs.writeFileSync(path.join(outDir, file), encoded.data);
    // The aggregator keeps input order and splits only between records; recover how many
    // user records went into this aggregate from its protobuf.
    const message = require('aws-kinesis-agg/lib/common').AggregatedRecord.decode(
      encoded.data.subarray(4, encoded.data.length - 16));
    const count = message.records.length;
    entry.aggregates.push({
      file,
      partition_key: encoded.partitionKey,
      records: expected.slice(next, next + count),
    });
    next += count;
  });
  if (next !== expected.length) {
    throw new Error(`${name}: aggregates hold ${next} records, expected ${expected.length}`);
  }
  manifest.vectors.push(entry);
}

// One user record per line: readable diffs, no padding.
function formatManifest(m) {
  const lines = ['{'];
  lines.push(` "generator": ${JSON.stringify(m.generator)},`);
  lines.push(` "format": ${JSON.stringify(m.format)},`);
  lines.push(' "vectors": [');
  m.vectors.forEach((v, vi) => {
    lines.push(`  {"name": ${JSON.stringify(v.name)}, "aggregates": [`);
    v.aggregates.forEach((a, ai) => {
      lines.push(`   {"file": ${JSON.stringify(a.file)}, "partition_key": ${JSON.stringify(a.partition_key)}, "records": [`);
      a.records.forEach((r, ri) => {
        lines.push(`    ${JSON.stringify(r)}${ri + 1 < a.records.length ? ',' : ''}`);
      });
      lines.push(`   ]}${ai + 1 < v.aggregates.length ? ',' : ''}`);
    });
    lines.push(`  ]}${vi + 1 < m.vectors.length ? ',' : ''}`);
  });
  lines.push(' ]');
  lines.push('}');
  return lines.join('\n') + '\n';
}
fs.writeFileSync(path.join(outDir, 'manifest.json'), formatManifest(manifest));
