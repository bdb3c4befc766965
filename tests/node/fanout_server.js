'use strict';
// A fault-injecting enhanced fan-out server for kclpp's tests (issue 13), in front of a real
// Kinesis (kinesalite) that lacks fan-out. kinesis-local has fan-out but no initial
// response, no ChildShards, a 1 s poll and 5-minute subscriptions; this server covers what
// it cannot: resharding (SHARD_END with ChildShards), the initial response, in-stream
// exceptions and errors, dropped connections, corrupt frames, rejections, subscriptions the
// service ends early, and slow consumers (HTTP/2 flow control).
//
//   node tests/node/fanout_server.js --upstream http://127.0.0.1:KINESALITE_PORT \
//        [--port 0] [--http-port PORT] [--activate-ms 200] [--poll-ms 50] \
//        [--heartbeat-ms 1000] [--max-event-bytes 1048576] [--initial-response] [--verbose]
//
// One port serves everything: the first bytes of a connection decide. The HTTP/2 client
// preface ("PRI * HTTP/2.0...", HTTP/2 with prior knowledge, h2c) goes to an HTTP/2
// server, anything else to an HTTP/1.1 server, because kclpp's KinesisClient speaks
// HTTP/1.1 and its subscriber HTTP/2 to the same endpoint. --http-port adds a second,
// HTTP/1.1-only port. Prints `READY <port> <http-port>` on stdout once listening (the same
// port twice without --http-port); logs to stderr; exits on SIGTERM, SIGINT or stdin EOF.
//
// What it does itself (on either protocol):
//   RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers,
//   DeregisterStreamConsumer: consumers in memory, CREATING -> ACTIVE (and DELETING -> gone)
//   after --activate-ms; stream ARNs from upstream DescribeStreamSummary.
//   Like AWS, they refuse a request without an Authorization header of SigV4's shape
//   (MissingAuthenticationTokenException, IncompleteSignatureException); no signature is
//   checked.
//   SubscribeToShard (HTTP/2 only; over HTTP/1.1 a 400): reads the shard from upstream (GetShardIterator +
//   GetRecords every --poll-ms) and streams application/vnd.amazon.eventstream messages:
//   an event as soon as records arrive, an empty one every --heartbeat-ms otherwise, and at
//   the end of a closed shard a last event with ContinuationSequenceNumber null and the
//   ChildShards (from upstream ListShards). One subscription per consumer and shard at a
//   time. When stream.write() returns false it waits for 'drain' before reading upstream
//   again, so a slow reader slows the server through HTTP/2 flow control. Errors before
//   streaming (unknown consumer or shard, a consumer not ACTIVE, a bad StartingPosition,
//   a subscription in use) are HTTP 400 JSON replies {"__type","message"}.
//   ContinuationSequenceNumber: the last record sent; before any, a sequence number from
//   which AFTER_SEQUENCE_NUMBER resumes at the same place (see resolveStart).
// Every other JSON call is forwarded to --upstream unchanged (kinesalite checks no
// signature).
//
// Control API (either protocol, any port):
//   POST /__faults  [rule, ...] (or one rule): replaces the pending rules. Each applies to the
//                   next `count` (default 1) subscriptions that match its optional `shard`
//                   (shard id) and `consumer` (name or ARN) filters:
//     {"rule":"reject","type":"LimitExceededException","message":"...","status":400}
//     {"rule":"initialResponse"}                 initial-response event ({}) first
//     {"rule":"endAfterEvents","events":3}       end the stream cleanly (as after 5 minutes)
//     {"rule":"endAfterMs","ms":1500}            the same, after a time
//     {"rule":"exceptionAfterEvents","events":2,"type":"InternalFailureException","message":"..."}
//     {"rule":"errorAfterEvents","events":2,"code":"InternalError","message":"..."}
//     {"rule":"resetAfterEvents","events":2,"how":"rst"|"socket"}
//                                                RST_STREAM (INTERNAL_ERROR) of this stream
//                                                (default), or the whole connection's TCP
//                                                socket closed with no GOAWAY
//     {"rule":"corruptAfterEvents","events":1,"where":"message"|"prelude"}
//                                                an event with a wrong CRC, then the end
//     {"rule":"recordsPerEvent","max":N}         split batches into events of <= N records
//     {"rule":"delayEvents","ms":N}              wait N ms before each event
//   A matching reject rule is taken alone; otherwise every matching rule is taken. "events"
//   counts SubscribeToShardEvents sent (heartbeats included, the initial response not); 0
//   acts before the first one.
//   GET /__faults   the rules still pending;  DELETE /__faults  drops them.
//   GET /__stats    {"sessions" (HTTP/2 connections so far), "sessionsOpen",
//                    "http1Connections", "subscriptions": [one per SubscribeToShard request,
//                    in order: {"id", "consumer", "consumerArn", "shard", "position": {"type",
//                    "sequenceNumber", "timestamp"}, "protocol", "faults" (rules taken),
//                    "events", "records", "bytes" (sent), "writeBlocked" (times write()
//                    returned false), "drainWaitMs", "continuation" (the last one sent),
//                    "startedAt", "endedAt", "ended", "end", "detail"}]}
//                   end: "shard-end", "ended" (a rule), "exception", "error", "reset",
//                   "corrupt", "rejected" (detail: the error type), "client-closed",
//                   "upstream-error", "deregistered"; null while streaming.
//   POST /__reset   drops rules, stats and consumers (a fresh server for the next test).

const crypto = require('crypto');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const zlib = require('zlib');

// --- command line and logging ------------------------------------------------------------

const USAGE = 'usage: fanout_server.js --upstream URL [--port N] [--http-port N] [--activate-ms N] ' +
    '[--poll-ms N] [--heartbeat-ms N] [--max-event-bytes N] [--initial-response] [--verbose]';

function parseArgs(argv) {
  const opts = {upstream: null, port: 0, httpPort: null, host: '127.0.0.1', activateMs: 200, pollMs: 50,
                heartbeatMs: 1000, maxEventBytes: 1 << 20, initialResponse: false, verbose: false};
  const numbers = {'--port': 'port', '--http-port': 'httpPort', '--activate-ms': 'activateMs',
                   '--poll-ms': 'pollMs', '--heartbeat-ms': 'heartbeatMs', '--max-event-bytes': 'maxEventBytes'};
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '--initial-response') opts.initialResponse = true;
    else if (arg === '--verbose') opts.verbose = true;
    else if (arg === '--upstream' || arg === '--host') opts[arg.slice(2)] = argv[++i];
    else if (numbers[arg]) {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 0) fail(`${arg} needs a non-negative integer, got ${argv[i]}`);
      opts[numbers[arg]] = value;
    } else fail(`unknown argument ${arg}`);
  }
  if (!opts.upstream) fail('--upstream URL is required');
  return opts;
}

function fail(message) {
  process.stderr.write(`fanout_server: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function log(message) {
  process.stderr.write(`fanout_server: ${message}\n`);
}

const opts = parseArgs(process.argv.slice(2));
const upstreamUrl = new URL(opts.upstream);
const upstreamAgent = new http.Agent({keepAlive: true, maxSockets: 64});
// The sniffer's socket, on itself: an Http2Session's `socket` is a proxy that refuses end().
const RAW_SOCKET = Symbol('raw socket');

// --- event-stream encoding ---------------------------------------------------------------
// A message: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes,
// headers, payload, CRC32 of everything before it. Every header here is a string (type 7):
// name length (u8), name, 7, value length (u16 BE), value.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; ++n) {
    let c = n;
    for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function tableCrc32(buf) {
  let crc = 0xffffffff;
  for (const byte of buf) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// zlib.crc32 arrived in Node 20.15 / 22.2.
const crc32 = typeof zlib.crc32 === 'function' ? (buf) => zlib.crc32(buf) >>> 0 : tableCrc32;

function encodeHeaders(headers) {
  return Buffer.concat(headers.map(([name, value]) => {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const out = Buffer.alloc(4 + n.length + v.length);
    out.writeUInt8(n.length, 0);
    n.copy(out, 1);
    out.writeUInt8(7, 1 + n.length);
    out.writeUInt16BE(v.length, 2 + n.length);
    v.copy(out, 4 + n.length);
    return out;
  }));
}

// `corrupt`: undefined, "message" (a wrong message CRC) or "prelude" (a wrong prelude CRC).
function encodeMessage(headers, payload, corrupt) {
  const head = encodeHeaders(headers);
  const total = 12 + head.length + payload.length + 4;
  const msg = Buffer.alloc(total);
  msg.writeUInt32BE(total, 0);
  msg.writeUInt32BE(head.length, 4);
  msg.writeUInt32BE((crc32(msg.subarray(0, 8)) ^ (corrupt === 'prelude' ? 1 : 0)) >>> 0, 8);
  head.copy(msg, 12);
  payload.copy(msg, 12 + head.length);
  msg.writeUInt32BE((crc32(msg.subarray(0, total - 4)) ^ (corrupt === 'message' ? 1 : 0)) >>> 0, total - 4);
  return msg;
}

function eventMessage(eventType, body, corrupt) {
  return encodeMessage([[':message-type', 'event'], [':event-type', eventType],
                        [':content-type', 'application/json']],
                       Buffer.from(JSON.stringify(body), 'utf8'), corrupt);
}

function exceptionMessage(type, message) {
  return encodeMessage([[':message-type', 'exception'], [':exception-type', type],
                        [':content-type', 'application/json']],
                       Buffer.from(JSON.stringify({message}), 'utf8'));
}

function errorMessage(code, message) {
  return encodeMessage([[':message-type', 'error'], [':error-code', code], [':error-message', message]],
                       Buffer.alloc(0));
}

// --- errors and replies ------------------------------------------------------------------

// An AWS error reply: HTTP `status` with {"__type", "message"}.
class ApiError extends Error {
  constructor(type, message, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const JSON_TYPE = 'application/x-amz-json-1.1';

function jsonReply(reply, status, body) {
  reply(status, {'content-type': JSON_TYPE}, Buffer.from(JSON.stringify(body), 'utf8'));
}

function errorReply(reply, err) {
  reply(err.status, {'content-type': JSON_TYPE, 'x-amzn-errortype': err.type},
        Buffer.from(JSON.stringify({__type: err.type, message: err.message}), 'utf8'));
}

// --- upstream ----------------------------------------------------------------------------

// One HTTP/1.1 request to upstream: {status, headers, body}.
function upstreamRequest(path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({host: upstreamUrl.hostname, port: upstreamUrl.port || 80, method: 'POST', path,
                              headers: {...headers, 'content-length': body.length}, agent: upstreamAgent},
                             (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks)}));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A Kinesis call of the server's own: its reply, or an ApiError with upstream's type.
// (kinesalite wants an Authorization header of the right shape, not a valid signature.)
async function kinesis(operation, payload) {
  const headers = {
    'content-type': JSON_TYPE,
    'x-amz-target': `Kinesis_20131202.${operation}`,
    'x-amz-date': new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''),
    'authorization': 'AWS4-HMAC-SHA256 Credential=AKIDFANOUTSERVER/20240101/us-east-1/kinesis/aws4_request, ' +
                     'SignedHeaders=host;x-amz-date, Signature=0',
  };
  let res;
  try {
    res = await upstreamRequest('/', headers, Buffer.from(JSON.stringify(payload), 'utf8'));
  } catch (e) {
    throw new ApiError('InternalFailureException', `upstream ${operation} failed: ${e.message}`, 500);
  }
  const body = res.body.length ? JSON.parse(res.body.toString('utf8')) : {};
  if (res.status !== 200) {
    const type = String(body.__type || 'InternalFailureException').replace(/^.*#/, '');
    throw new ApiError(type, body.message || body.Message || `upstream ${operation}: HTTP ${res.status}`,
                       res.status);
  }
  return body;
}

// Forwards a request unchanged; hop-by-hop and HTTP/2 pseudo headers stay behind.
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection',
                             'http2-settings', 'content-length', 'host', 'te']);

function forwardableHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(':') && !HOP_HEADERS.has(name.toLowerCase())) out[name] = value;
  }
  return out;
}

async function forward(request, reply) {
  try {
    const res = await upstreamRequest(request.path || '/', forwardableHeaders(request.headers), request.body);
    reply(res.status, forwardableHeaders(res.headers), res.body);
  } catch (e) {
    errorReply(reply, new ApiError('InternalFailureException', `upstream unreachable: ${e.message}`, 502));
  }
}

// --- consumers ---------------------------------------------------------------------------

const consumers = new Map();  // consumer ARN -> {name, arn, streamArn, streamName, status, created}
const NAME_RE = /^[a-zA-Z0-9_.-]{1,128}$/;
const STREAM_ARN_RE = /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/([a-zA-Z0-9_.-]+)$/;

function required(body, field, operation) {
  const value = body[field];
  if (typeof value !== 'string' || value === '') {
    throw new ApiError('ValidationException',
                       `1 validation error detected: Value at '${field}' failed to satisfy constraint: ` +
                       `Member must not be null (${operation})`);
  }
  return value;
}

// The stream of `streamArn`, checked against upstream: its name.
async function streamOfArn(streamArn) {
  const match = STREAM_ARN_RE.exec(streamArn);
  if (!match) throw new ApiError('InvalidArgumentException', `StreamARN ${streamArn} is not a Kinesis stream ARN`);
  const summary = await kinesis('DescribeStreamSummary', {StreamName: match[1]});
  if (summary.StreamDescriptionSummary.StreamARN !== streamArn) {
    throw new ApiError('ResourceNotFoundException', `Stream ${streamArn} not found`);
  }
  return match[1];
}

function summary(consumer) {
  return {ConsumerName: consumer.name, ConsumerARN: consumer.arn, ConsumerStatus: consumer.status,
          ConsumerCreationTimestamp: consumer.created / 1000};
}

function consumerByName(streamArn, name) {
  for (const c of consumers.values()) if (c.streamArn === streamArn && c.name === name) return c;
  return null;
}

// By ConsumerARN, or by StreamARN + ConsumerName (as Describe and Deregister take it).
function findConsumer(body) {
  let consumer = null;
  let what;
  if (typeof body.ConsumerARN === 'string' && body.ConsumerARN) {
    consumer = consumers.get(body.ConsumerARN);
    what = body.ConsumerARN;
  } else if (typeof body.StreamARN === 'string' && typeof body.ConsumerName === 'string') {
    consumer = consumerByName(body.StreamARN, body.ConsumerName);
    what = `${body.ConsumerName} of ${body.StreamARN}`;
  } else {
    throw new ApiError('InvalidArgumentException',
                       'ConsumerARN or both ConsumerName and StreamARN are required for this request.');
  }
  if (!consumer) throw new ApiError('ResourceNotFoundException', `Consumer ${what} not found.`);
  return consumer;
}

async function registerStreamConsumer(body) {
  const streamArn = required(body, 'StreamARN', 'RegisterStreamConsumer');
  const name = required(body, 'ConsumerName', 'RegisterStreamConsumer');
  if (!NAME_RE.test(name)) {
    throw new ApiError('ValidationException', `ConsumerName ${name} must match [a-zA-Z0-9_.-]{1,128}`);
  }
  const streamName = await streamOfArn(streamArn);
  if (consumerByName(streamArn, name)) {
    throw new ApiError('ResourceInUseException', `Consumer ${name} under stream ${streamName} already exists.`);
  }
  const ofStream = [...consumers.values()].filter((c) => c.streamArn === streamArn);
  if (ofStream.length >= 20) throw new ApiError('LimitExceededException', `Stream ${streamName} has 20 consumers.`);
  const created = Date.now();
  const consumer = {name, arn: `${streamArn}/consumer/${name}:${Math.floor(created / 1000)}`, streamArn, streamName,
                    status: 'CREATING', created};
  consumers.set(consumer.arn, consumer);
  consumer.timer = setTimeout(() => { consumer.status = 'ACTIVE'; }, opts.activateMs);
  log(`registered consumer ${consumer.arn}`);
  return {Consumer: summary(consumer)};
}

async function describeStreamConsumer(body) {
  const consumer = findConsumer(body);
  return {ConsumerDescription: {...summary(consumer), StreamARN: consumer.streamArn}};
}

async function listStreamConsumers(body) {
  const streamArn = required(body, 'StreamARN', 'ListStreamConsumers');
  await streamOfArn(streamArn);
  const max = body.MaxResults === undefined ? 100 : body.MaxResults;
  if (!Number.isInteger(max) || max < 1 || max > 10000) {
    throw new ApiError('InvalidArgumentException', `MaxResults ${max} is not between 1 and 10000`);
  }
  const all = [...consumers.values()].filter((c) => c.streamArn === streamArn);
  const start = body.NextToken === undefined ? 0 : Number(Buffer.from(String(body.NextToken), 'base64').toString());
  if (!Number.isInteger(start) || start < 0) throw new ApiError('InvalidArgumentException', 'NextToken is invalid');
  const page = all.slice(start, start + max);
  const out = {Consumers: page.map(summary)};
  if (start + max < all.length) out.NextToken = Buffer.from(String(start + max)).toString('base64');
  return out;
}

async function deregisterStreamConsumer(body) {
  const consumer = findConsumer(body);
  if (consumer.status !== 'ACTIVE') {
    throw new ApiError('ResourceInUseException', `Consumer ${consumer.arn} is ${consumer.status}, not ACTIVE.`);
  }
  consumer.status = 'DELETING';
  clearTimeout(consumer.timer);
  consumer.timer = setTimeout(() => consumers.delete(consumer.arn), opts.activateMs);
  for (const sub of subscriptions.values()) {
    if (sub.consumer === consumer) endSubscription(sub, 'deregistered');
  }
  log(`deregistering consumer ${consumer.arn}`);
  return {};
}

const OWN_OPERATIONS = {
  RegisterStreamConsumer: registerStreamConsumer,
  DescribeStreamConsumer: describeStreamConsumer,
  ListStreamConsumers: listStreamConsumers,
  DeregisterStreamConsumer: deregisterStreamConsumer,
};

// --- fault rules -------------------------------------------------------------------------

let pendingRules = [];

// What each rule must carry besides `rule`: name -> [field, check].
const RULE_FIELDS = {
  reject: [['type', 'string']],
  initialResponse: [],
  endAfterEvents: [['events', 'count']],
  endAfterMs: [['ms', 'count']],
  exceptionAfterEvents: [['events', 'count']],
  errorAfterEvents: [['events', 'count']],
  resetAfterEvents: [['events', 'count']],
  corruptAfterEvents: [['events', 'count']],
  recordsPerEvent: [['max', 'positive']],
  delayEvents: [['ms', 'count']],
};

function checkRule(rule, index) {
  const where = `rule ${index}`;
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new Error(`${where} is not an object`);
  const fields = RULE_FIELDS[rule.rule];
  if (!fields) {
    throw new Error(`${where}: unknown rule ${JSON.stringify(rule.rule)} (known: ${Object.keys(RULE_FIELDS).join(', ')})`);
  }
  for (const [field, kind] of fields) {
    const v = rule[field];
    const ok = kind === 'string' ? typeof v === 'string' && v !== ''
             : Number.isInteger(v) && v >= (kind === 'positive' ? 1 : 0);
    if (!ok) throw new Error(`${where} (${rule.rule}): "${field}" must be ${kind === 'string' ? 'a string' : `an integer >= ${kind === 'positive' ? 1 : 0}`}`);
  }
  if (rule.count !== undefined && !(Number.isInteger(rule.count) && rule.count >= 1)) {
    throw new Error(`${where} (${rule.rule}): "count" must be an integer >= 1`);
  }
  if (rule.how !== undefined && rule.how !== 'rst' && rule.how !== 'socket') {
    throw new Error(`${where} (${rule.rule}): "how" must be "rst" or "socket"`);
  }
  if (rule.where !== undefined && rule.where !== 'message' && rule.where !== 'prelude') {
    throw new Error(`${where} (${rule.rule}): "where" must be "message" or "prelude"`);
  }
  return {...rule, count: rule.count || 1};
}

function ruleMatches(rule, consumer, shardId) {
  return rule.count > 0 && (rule.shard === undefined || rule.shard === shardId) &&
         (rule.consumer === undefined || rule.consumer === consumer.name || rule.consumer === consumer.arn);
}

// The rules a new subscription takes (each one's count goes down by one): a matching
// reject rule alone, else every matching rule.
function takeRules(consumer, shardId) {
  const reject = pendingRules.find((r) => r.rule === 'reject' && ruleMatches(r, consumer, shardId));
  const taken = reject ? [reject] : pendingRules.filter((r) => ruleMatches(r, consumer, shardId));
  for (const r of taken) r.count -= 1;
  pendingRules = pendingRules.filter((r) => r.count > 0);
  const faults = {};
  for (const r of taken) if (!faults[r.rule]) faults[r.rule] = r;
  return faults;
}

function describeRule(r) {
  const detail = r.events !== undefined ? r.events : r.max !== undefined ? r.max : r.ms !== undefined ? r.ms
               : r.type;
  return detail === undefined ? r.rule : `${r.rule}:${detail}`;
}

// --- stats -------------------------------------------------------------------------------

const stats = {sessions: 0, sessionsOpen: 0, http1Connections: 0, subscriptions: []};
let nextSubscriptionId = 1;

function newStat(consumer, shardId, position, protocol, faults) {
  const stat = {id: nextSubscriptionId++, consumer: consumer.name, consumerArn: consumer.arn, shard: shardId,
                position: {type: position.Type, sequenceNumber: position.SequenceNumber || null,
                           timestamp: position.Timestamp === undefined ? null : position.Timestamp},
                protocol, faults: Object.values(faults).map(describeRule), startedAt: Date.now(), events: 0,
                records: 0, bytes: 0, writeBlocked: 0, drainWaitMs: 0, continuation: null, ended: false,
                end: null, detail: null, endedAt: null};
  stats.subscriptions.push(stat);
  return stat;
}

// --- SubscribeToShard --------------------------------------------------------------------

const subscriptions = new Map();  // consumer ARN + shard -> live subscription
const POSITION_TYPES = ['TRIM_HORIZON', 'LATEST', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER', 'AT_TIMESTAMP'];

function checkPosition(position) {
  if (typeof position !== 'object' || position === null) {
    throw new ApiError('ValidationException', 'StartingPosition must not be null');
  }
  if (!POSITION_TYPES.includes(position.Type)) {
    throw new ApiError('ValidationException', `StartingPosition.Type ${JSON.stringify(position.Type)} is not one of ` +
                       POSITION_TYPES.join(', '));
  }
  const bySequence = position.Type === 'AT_SEQUENCE_NUMBER' || position.Type === 'AFTER_SEQUENCE_NUMBER';
  const hasSequence = position.SequenceNumber !== undefined && position.SequenceNumber !== null;
  if (bySequence !== hasSequence || (hasSequence && !/^\d{1,128}$/.test(String(position.SequenceNumber)))) {
    throw new ApiError('InvalidArgumentException', bySequence
        ? `StartingPosition ${position.Type} needs a SequenceNumber of digits, got ${JSON.stringify(position.SequenceNumber)}`
        : `StartingPosition ${position.Type} takes no SequenceNumber`);
  }
  const isTimestamp = position.Type === 'AT_TIMESTAMP';
  const hasTimestamp = position.Timestamp !== undefined && position.Timestamp !== null;
  if (isTimestamp !== hasTimestamp || (hasTimestamp && typeof position.Timestamp !== 'number')) {
    throw new ApiError('InvalidArgumentException', isTimestamp
        ? `StartingPosition AT_TIMESTAMP needs a Timestamp (epoch seconds), got ${JSON.stringify(position.Timestamp)}`
        : `StartingPosition ${position.Type} takes no Timestamp`);
  }
}

// Every shard of the stream (ListShards, following NextToken).
async function listShards(streamName) {
  const shards = [];
  let page = await kinesis('ListShards', {StreamName: streamName});
  shards.push(...page.Shards);
  while (page.NextToken) {
    page = await kinesis('ListShards', {NextToken: page.NextToken});
    shards.push(...page.Shards);
  }
  return shards;
}

// Reads the shard from TRIM_HORIZON while `keep(record)` holds: the sequence number of the
// last record kept, or null when none was.
async function lastRecordWhile(streamName, shardId, keep) {
  let it = (await kinesis('GetShardIterator', {StreamName: streamName, ShardId: shardId,
                                               ShardIteratorType: 'TRIM_HORIZON'})).ShardIterator;
  let last = null;
  while (it) {
    const page = await kinesis('GetRecords', {ShardIterator: it, Limit: 10000});
    for (const r of page.Records) {
      if (!keep(r)) return last;
      last = r.SequenceNumber;
    }
    if (page.Records.length === 0) break;
    it = page.NextShardIterator;
  }
  return last;
}

// Where the subscription starts upstream, and the ContinuationSequenceNumber its events
// carry until a record is sent. A continuation must be a sequence number that resumes at
// the same place as AFTER_SEQUENCE_NUMBER: the shard's StartingSequenceNumber stands for
// "before the first record" (and is mapped back to TRIM_HORIZON when it comes back, since
// kinesalite's AFTER adds a second to it and could skip records of that second); LATEST
// and AT_TIMESTAMP become "after the last record before the position".
function afterPosition(shardStart, seq) {
  return seq === null || seq === shardStart ? {type: 'TRIM_HORIZON', continuation: shardStart}
                                            : {type: 'AFTER_SEQUENCE_NUMBER', seq, continuation: seq};
}

async function iteratorAt(streamName, shardId, from) {
  const request = {StreamName: streamName, ShardId: shardId, ShardIteratorType: from.type};
  if (from.seq !== undefined) request.StartingSequenceNumber = from.seq;
  return (await kinesis('GetShardIterator', request)).ShardIterator;
}

async function resolveStart(streamName, shard, position) {
  const after = (seq) => afterPosition(shard.SequenceNumberRange.StartingSequenceNumber, seq);
  let from;
  switch (position.Type) {
    case 'TRIM_HORIZON': from = after(null); break;
    case 'AFTER_SEQUENCE_NUMBER': from = after(String(position.SequenceNumber)); break;
    case 'AT_SEQUENCE_NUMBER':
      // Nothing at or after it yet means nothing will be: AFTER it resumes at the same place.
      from = {type: 'AT_SEQUENCE_NUMBER', seq: String(position.SequenceNumber),
              continuation: String(position.SequenceNumber)};
      break;
    case 'LATEST': from = after(await lastRecordWhile(streamName, shard.ShardId, () => true)); break;
    default:
      from = after(await lastRecordWhile(streamName, shard.ShardId,
                                         (r) => r.ApproximateArrivalTimestamp < position.Timestamp));
  }
  return {iterator: await iteratorAt(streamName, shard.ShardId, from), continuation: from.continuation};
}

function parseSubscribe(body) {
  const consumerArn = required(body, 'ConsumerARN', 'SubscribeToShard');
  const shardId = required(body, 'ShardId', 'SubscribeToShard');
  checkPosition(body.StartingPosition);
  const consumer = consumers.get(consumerArn);
  if (!consumer) throw new ApiError('ResourceNotFoundException', `Consumer ${consumerArn} not found.`);
  if (consumer.status !== 'ACTIVE') {
    throw new ApiError('ResourceInUseException', `Consumer ${consumerArn} is ${consumer.status}, not ACTIVE.`);
  }
  return {consumer, shardId, position: body.StartingPosition};
}

// The checks before any await: the subscription, holding its consumer and shard, or an
// ApiError. A request refused for a subscription in use takes no fault rule; every
// request shows in the stats.
function admit(request, stream) {
  const {consumer, shardId, position} = parseSubscribe(request.body);
  const key = `${consumer.arn}|${shardId}`;
  const inUse = subscriptions.has(key);
  const faults = inUse ? {} : takeRules(consumer, shardId);
  const stat = newStat(consumer, shardId, position, request.protocol, faults);
  if (inUse) {
    finishStat(stat, 'rejected', 'ResourceInUseException');
    throw new ApiError('ResourceInUseException',
                       `Another active subscription exists for consumer ${consumer.arn} on shard ${shardId}.`);
  }
  if (faults.reject) {
    const r = faults.reject;
    finishStat(stat, 'rejected', r.type);
    throw new ApiError(r.type, r.message || `${r.type} (injected by the test)`, r.status || 400);
  }
  const sub = {key, consumer, shardId, position, stream, faults, stat, done: false, drainWaiters: [],
               lastEventAt: 0, flushed: Promise.resolve(), continuation: null, shardStart: null};
  subscriptions.set(key, sub);
  return sub;
}

// The upstream iterator the subscription starts from; sets its first continuation.
async function startUpstream(sub) {
  const streamName = sub.consumer.streamName;
  const shard = (await listShards(streamName)).find((s) => s.ShardId === sub.shardId);
  if (!shard) throw new ApiError('ResourceNotFoundException', `Shard ${sub.shardId} in stream ${streamName} not found.`);
  const start = await resolveStart(streamName, shard, sub.position);
  sub.continuation = start.continuation;
  sub.shardStart = shard.SequenceNumberRange.StartingSequenceNumber;
  return start.iterator;
}

async function handleSubscribe(request, stream) {
  const sub = admit(request, stream);  // holds the consumer and shard from here on
  let iterator;
  try {
    iterator = await startUpstream(sub);
  } catch (e) {
    subscriptions.delete(sub.key);
    finishStat(sub.stat, 'rejected', e.type || e.message);
    throw e;
  }
  if (stream.destroyed || stream.closed) return endSubscription(sub, 'client-closed');
  stream.on('close', () => endSubscription(sub, 'client-closed'));
  stream.on('drain', () => wakeDrainWaiters(sub));
  stream.respond({':status': 200, 'content-type': 'application/vnd.amazon.eventstream',
                  'x-amzn-requestid': crypto.randomUUID()});
  const p = sub.position;
  log(`subscription ${sub.stat.id}: ${sub.consumer.name} ${sub.shardId} from ${p.Type}` +
      `${p.SequenceNumber ? ' ' + p.SequenceNumber : ''}${sub.stat.faults.length ? ' faults ' + sub.stat.faults : ''}`);
  pump(sub, iterator).catch((e) => {
    log(`subscription ${sub.stat.id}: ${e.stack || e}`);
    if (sub.done) return;
    writeMessage(sub, exceptionMessage(e.type || 'InternalFailureException', e.message));
    endSubscription(sub, 'upstream-error', e.message);
  });
}

function finishStat(stat, how, detail) {
  if (stat.ended) return;
  stat.ended = true;
  stat.end = how;
  stat.detail = detail === undefined ? null : detail;
  stat.endedAt = Date.now();
}

// Ends the subscription `how`: cleanly (end of the HTTP/2 stream) unless the stream is
// gone or a reset was asked for. Idempotent: the first `how` is the one recorded.
function endSubscription(sub, how, detail) {
  if (sub.done) return;
  sub.done = true;
  if (subscriptions.get(sub.key) === sub) subscriptions.delete(sub.key);
  finishStat(sub.stat, how, detail);
  wakeDrainWaiters(sub);
  if (sub.stream.destroyed || sub.stream.closed) {
    // nothing left to end
  } else if (how === 'reset' && sub.faults.resetAfterEvents.how === 'socket') {
    // (session.socket is a proxy that refuses end(): the sniffer left the raw socket.) The
    // TCP connection ends with no GOAWAY and no stream ended: a dropped connection to
    // HTTP/2, and the bytes already written still arrive first.
    const socket = sub.stream.session.socket[RAW_SOCKET];
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  } else if (how === 'reset') {
    // Not close(code): it ends the writable side first, and an END_STREAM could reach the
    // client before the RST_STREAM. destroy(error) sends RST_STREAM INTERNAL_ERROR alone.
    sub.stream.destroy(new Error('reset by the test'));
  } else {
    sub.stream.end();
  }
  log(`subscription ${sub.stat.id}: ${how}${detail ? ' (' + detail + ')' : ''} after ${sub.stat.events} events, ` +
      `${sub.stat.records} records`);
}

function wakeDrainWaiters(sub) {
  const waiters = sub.drainWaiters;
  sub.drainWaiters = [];
  for (const w of waiters) w();
}

// Writes one message; when the stream's buffer is full (HTTP/2 flow control: the client
// does not read), waits for 'drain' so that nothing more is read upstream meanwhile.
async function writeMessage(sub, message) {
  if (sub.stream.destroyed || sub.stream.closed) return;
  let ok;
  sub.flushed = new Promise((resolve) => { ok = sub.stream.write(message, () => resolve()); });
  sub.stat.bytes += message.length;
  if (ok) return;
  sub.stat.writeBlocked += 1;
  const since = Date.now();
  await new Promise((resolve) => sub.drainWaiters.push(resolve));
  sub.stat.drainWaitMs += Date.now() - since;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The fault due once `events` events are sent, if any: true when it ended the subscription.
async function applyDueFault(sub) {
  const f = sub.faults;
  const due = (rule) => f[rule] && f[rule].events <= sub.stat.events;
  if (due('endAfterEvents')) {
    endSubscription(sub, 'ended');
  } else if (due('exceptionAfterEvents')) {
    const r = f.exceptionAfterEvents;
    const type = r.type || 'InternalFailureException';
    await writeMessage(sub, exceptionMessage(type, r.message || `${type} (injected by the test)`));
    endSubscription(sub, 'exception', type);
  } else if (due('errorAfterEvents')) {
    const r = f.errorAfterEvents;
    const code = r.code || 'InternalError';
    await writeMessage(sub, errorMessage(code, r.message || `${code} (injected by the test)`));
    endSubscription(sub, 'error', code);
  } else if (due('resetAfterEvents')) {
    // RST_STREAM would overtake what nghttp2 has not sent yet: the events first (unless
    // the client's flow-control window holds them back). The write callback comes when
    // nghttp2 took the data, the socket write in a later turn of the event loop.
    await Promise.race([sub.flushed, sleep(1000)]);
    await sleep(20);
    endSubscription(sub, 'reset', f.resetAfterEvents.how || 'rst');
  } else if (due('corruptAfterEvents')) {
    const where = f.corruptAfterEvents.where || 'message';
    await writeMessage(sub, eventMessage('SubscribeToShardEvent', eventBody(sub, [], 0), where));
    endSubscription(sub, 'corrupt', where);
  }
  return sub.done;
}

function eventBody(sub, records, millisBehind, childShards) {
  const body = {
    Records: records.map((r) => {
      const out = {SequenceNumber: r.SequenceNumber, ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp,
                   Data: r.Data, PartitionKey: r.PartitionKey};
      if (r.EncryptionType) out.EncryptionType = r.EncryptionType;
      return out;
    }),
    ContinuationSequenceNumber: childShards ? null : sub.continuation,
    MillisBehindLatest: millisBehind,
  };
  if (childShards) body.ChildShards = childShards;
  return body;
}

// Sends one SubscribeToShardEvent, then whatever fault is due: false once the
// subscription is over.
async function sendEvent(sub, records, millisBehind, childShards) {
  if (sub.faults.delayEvents) await sleep(sub.faults.delayEvents.ms);
  if (sub.done) return false;
  if (records.length) sub.continuation = records[records.length - 1].SequenceNumber;
  const message = eventMessage('SubscribeToShardEvent', eventBody(sub, records, millisBehind, childShards));
  // Counted once handed to the stream, before any wait for 'drain'.
  sub.stat.events += 1;
  sub.stat.records += records.length;
  sub.stat.continuation = childShards ? null : sub.continuation;
  await writeMessage(sub, message);
  sub.lastEventAt = Date.now();
  return !(await applyDueFault(sub)) && !sub.done;
}

// The children of a closed shard, as ChildShards lists them.
async function childShards(sub) {
  const shards = await listShards(sub.consumer.streamName);
  return shards.filter((s) => s.ParentShardId === sub.shardId || s.AdjacentParentShardId === sub.shardId)
      .map((s) => ({ShardId: s.ShardId, ParentShards: [s.ParentShardId, s.AdjacentParentShardId].filter(Boolean),
                    HashKeyRange: s.HashKeyRange}));
}

// A GetRecords page cut into events of at most --max-event-bytes of record data (one
// record at least) and the recordsPerEvent rule's count, so that one event never dwarfs
// the HTTP/2 window and flow control has something to hold back.
function eventBatches(records, perEventRule) {
  const maxRecords = perEventRule ? perEventRule.max : Infinity;
  const batches = [];
  let batch = [];
  let bytes = 0;
  for (const r of records) {
    const size = Math.floor(r.Data.length * 3 / 4) + Buffer.byteLength(r.PartitionKey);
    if (batch.length && (batch.length >= maxRecords || bytes + size > opts.maxEventBytes)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(r);
    bytes += size;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

// Reads upstream and streams events until the shard ends, a fault ends the subscription
// or the client goes away. Reading upstream waits while a write waits for 'drain'.
async function pump(sub, iterator) {
  if (sub.faults.initialResponse || opts.initialResponse) {
    await writeMessage(sub, eventMessage('initial-response', {}));
  }
  if (await applyDueFault(sub)) return;
  if (sub.faults.endAfterMs) {
    const ms = sub.faults.endAfterMs.ms;
    setTimeout(() => endSubscription(sub, 'ended', `after ${ms} ms`), ms);
  }
  let first = true;
  while (!sub.done) {
    let page;
    try {
      page = await kinesis('GetRecords', {ShardIterator: iterator});
    } catch (e) {
      if (e.type !== 'ExpiredIteratorException') throw e;  // (kinesalite's last 5 minutes)
      iterator = await iteratorAt(sub.consumer.streamName, sub.shardId,
                                  afterPosition(sub.shardStart, sub.continuation));
      continue;
    }
    if (sub.done) return;
    for (const records of eventBatches(page.Records, sub.faults.recordsPerEvent)) {
      if (!(await sendEvent(sub, records, page.MillisBehindLatest))) return;
    }
    if (!page.NextShardIterator) {
      if (await sendEvent(sub, [], 0, await childShards(sub))) endSubscription(sub, 'shard-end');
      return;
    }
    iterator = page.NextShardIterator;
    if (page.Records.length === 0) {
      if ((first || Date.now() - sub.lastEventAt >= opts.heartbeatMs) &&
          !(await sendEvent(sub, [], page.MillisBehindLatest))) {
        return;
      }
      await sleep(opts.pollMs);
    }
    first = false;
  }
}

// --- requests (either protocol) ----------------------------------------------------------

function controlApi(request, reply) {
  const path = request.path.split('?')[0];
  if (path === '/__stats' && request.method === 'GET') return jsonReply(reply, 200, stats);
  if (path === '/__reset' && request.method === 'POST') {
    pendingRules = [];
    stats.subscriptions = [];
    for (const c of consumers.values()) clearTimeout(c.timer);
    consumers.clear();
    for (const sub of [...subscriptions.values()]) endSubscription(sub, 'ended', 'reset by the test');
    return jsonReply(reply, 200, {});
  }
  if (path !== '/__faults') return jsonReply(reply, 404, {message: `no control endpoint ${request.method} ${path}`});
  if (request.method === 'GET') return jsonReply(reply, 200, pendingRules);
  if (request.method === 'DELETE') {
    pendingRules = [];
    return jsonReply(reply, 200, []);
  }
  if (request.method !== 'POST') return jsonReply(reply, 405, {message: `${request.method} /__faults`});
  try {
    const parsed = JSON.parse(request.body.toString('utf8'));
    pendingRules = (Array.isArray(parsed) ? parsed : [parsed]).map(checkRule);
  } catch (e) {
    return jsonReply(reply, 400, {message: `bad fault rules: ${e.message}`});
  }
  log(`fault rules: ${pendingRules.map((r) => `${describeRule(r)}x${r.count}`).join(' ') || 'none'}`);
  return jsonReply(reply, 200, pendingRules);
}

// AWS refuses unsigned calls; so does this server, so that a client that forgets to sign
// fails here too (the signature itself is not checked).
function checkSigned(headers) {
  const auth = headers.authorization;
  if (!auth) throw new ApiError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  for (const part of ['Credential=', 'SignedHeaders=', 'Signature=']) {
    if (!auth.includes(part)) throw new ApiError('IncompleteSignatureException', `Authorization header requires '${part.slice(0, -1)}'`);
  }
  if (!headers['x-amz-date'] && !headers.date) {
    throw new ApiError('IncompleteSignatureException', 'Authorization header requires a X-Amz-Date or Date header');
  }
}

async function handleOwn(operation, request, reply, stream) {
  checkSigned(request.headers);
  try {
    request.body = JSON.parse(request.body.toString('utf8') || '{}');
  } catch (e) {
    throw new ApiError('SerializationException', `${operation}: the body is not JSON: ${e.message}`);
  }
  if (operation === 'SubscribeToShard') {
    if (!stream) {
      throw new ApiError('InvalidArgumentException',
                         'SubscribeToShard needs HTTP/2 (this request came over HTTP/1.1)', 400);
    }
    return handleSubscribe(request, stream);
  }
  jsonReply(reply, 200, await OWN_OPERATIONS[operation](request.body));
}

async function route(request, reply, stream) {
  if (request.path.startsWith('/__')) return controlApi(request, reply);
  const target = String(request.headers['x-amz-target'] || '');
  const operation = target.startsWith('Kinesis_20131202.') ? target.slice('Kinesis_20131202.'.length) : '';
  if (operation !== 'SubscribeToShard' && !OWN_OPERATIONS[operation]) {
    if (opts.verbose) log(`forward ${request.protocol} ${operation || request.path}`);
    return forward(request, reply);
  }
  try {
    await handleOwn(operation, request, reply, stream);
  } catch (e) {
    if (!(e instanceof ApiError)) log(`${operation}: ${e.stack || e}`);
    errorReply(reply, e instanceof ApiError ? e : new ApiError('InternalFailureException', String(e), 500));
  }
}

function readBody(readable) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    readable.on('data', (c) => chunks.push(c));
    readable.on('end', () => resolve(Buffer.concat(chunks)));
    readable.on('error', reject);
  });
}

function onHttp1Request(req, res) {
  readBody(req).then((body) => {
    const reply = (status, headers, payload) => {
      res.writeHead(status, {...headers, 'content-length': payload.length});
      res.end(payload);
    };
    return route({protocol: 'http/1.1', method: req.method, path: req.url, headers: req.headers, body}, reply, null);
  }).catch((e) => log(`HTTP/1.1 request: ${e.stack || e}`));
}

function onHttp2Stream(stream, headers) {
  stream.on('error', (e) => { if (opts.verbose) log(`HTTP/2 stream: ${e.message}`); });
  readBody(stream).then((body) => {
    const reply = (status, replyHeaders, payload) => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({...replyHeaders, ':status': status, 'content-length': payload.length});
      stream.end(payload);
    };
    return route({protocol: 'h2', method: headers[':method'], path: headers[':path'] || '/', headers, body},
                 reply, stream);
  }).catch((e) => log(`HTTP/2 request: ${e.stack || e}`));
}

// --- listening ---------------------------------------------------------------------------

const h1server = http.createServer({keepAliveTimeout: 60000}, onHttp1Request);
h1server.on('connection', () => { stats.http1Connections += 1; });
const h2server = http2.createServer({settings: {maxConcurrentStreams: 1000}});
h2server.on('stream', onHttp2Stream);
const sessions = new Set();
h2server.on('session', (session) => {
  stats.sessions += 1;
  stats.sessionsOpen += 1;
  sessions.add(session);
  session.on('error', (e) => { if (opts.verbose) log(`HTTP/2 session: ${e.message}`); });
  session.on('close', () => {
    stats.sessionsOpen -= 1;
    sessions.delete(session);
  });
});

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

// Hands the connection to the HTTP/2 server when it opens with the client preface, else to
// the HTTP/1.1 one; the sniffed bytes are put back first.
function sniff(socket) {
  let seen = Buffer.alloc(0);
  const onData = (chunk) => {
    seen = Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const h2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (h2 && seen.length < PREFACE.length) return;  // could still be either
    socket.removeListener('data', onData);
    socket.pause();
    socket.unshift(seen);
    socket[RAW_SOCKET] = socket;
    (h2 ? h2server : h1server).emit('connection', socket);
    if (!h2) process.nextTick(() => socket.resume());
  };
  socket.on('data', onData);
  socket.on('error', () => {});
}

const allSockets = new Set();
function track(socket) {
  allSockets.add(socket);
  socket.on('close', () => allSockets.delete(socket));
}

const mainServer = net.createServer((socket) => { track(socket); sniff(socket); });
const extraServer = opts.httpPort === null ? null : net.createServer((socket) => {
  track(socket);
  h1server.emit('connection', socket);
});

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, opts.host, () => resolve(server.address().port));
  });
}

let stopping = false;
function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  mainServer.close();
  if (extraServer) extraServer.close();
  for (const s of sessions) s.destroy();
  for (const s of allSockets) s.destroy();
  upstreamAgent.destroy();
  setTimeout(() => process.exit(0), 50).unref();
}

async function main() {
  const port = await listen(mainServer, opts.port);
  const httpPort = extraServer ? await listen(extraServer, opts.httpPort) : port;
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
  process.stdout.write(`READY ${port} ${httpPort}\n`);
  log(`listening on ${opts.host}:${port}${extraServer ? ` and ${httpPort} (HTTP/1.1)` : ''}, upstream ${opts.upstream}`);
}

main().catch((e) => {
  log(`cannot start: ${e.message}`);
  process.exit(1);
});
