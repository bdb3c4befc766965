// Starts s3rver's command line with extra access keys registered: s3rver knows only the
// key S3RVER, and the credential-refresh tests hand out a new key with each credential set.
// s3rver does not verify SigV4 signatures, so any secret goes with them.
//   node s3rver_keys.js KEY1,KEY2,... /path/to/s3rver/bin/s3rver.js [s3rver options...]
'use strict';
const path = require('path');

const [keys, bin, ...args] = process.argv.slice(2);
const account = require(path.join(path.dirname(bin), '..', 'lib', 'models', 'account'));
for (const key of keys.split(',')) {
  if (key) account.DUMMY_ACCOUNT.createKeyPair(key, 'any-secret');
}
process.argv = [process.argv[0], bin, ...args];
require(bin);
