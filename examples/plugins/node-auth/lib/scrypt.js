'use strict';
// Password hashes in the PHC string format, with Node's built-in scrypt (no
// native add-on to build, nothing to download):
//
//   $scrypt$ln=15,r=8,p=1$<salt>$<key>
//
// ln is log2 of scrypt's N; salt and key are base64 without padding. The
// same format as passlib's scrypt hashes (Python), so either can write them.

const crypto = require('node:crypto');
const { promisify } = require('node:util');

const scrypt = promisify(crypto.scrypt);

const DEFAULT_LN = 15; // N = 32768: ~32 MiB and tens of ms per check
const KEY_LEN = 32;
const SALT_LEN = 16;

const b64 = (buf) => buf.toString('base64').replace(/=+$/, '');

// parse returns {ln, r, p, salt, key} or throws naming what is wrong.
function parse(hash) {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(hash);
  if (!m) throw new Error('not a $scrypt$ln=…,r=…,p=…$salt$key hash');
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 1 || ln > 24 || r < 1 || r > 64 || p < 1 || p > 16) {
    throw new Error(`scrypt parameters out of range: ln=${ln},r=${r},p=${p}`);
  }
  const key = Buffer.from(m[5], 'base64');
  if (key.length < 16) throw new Error('scrypt key shorter than 16 bytes');
  return { ln, r, p, salt: Buffer.from(m[4], 'base64'), key };
}

function options({ ln, r, p }) {
  const N = 2 ** ln;
  // Node refuses more than 32 MiB by default, exactly what ln=15,r=8 needs.
  return { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 };
}

// verify checks password against a parsed hash in constant time.
async function verify(parsed, password) {
  const got = await scrypt(Buffer.from(password, 'utf8'), parsed.salt, parsed.key.length, options(parsed));
  return crypto.timingSafeEqual(got, parsed.key);
}

async function hash(password, ln = DEFAULT_LN) {
  const params = { ln, r: 8, p: 1 };
  const salt = crypto.randomBytes(SALT_LEN);
  const key = await scrypt(Buffer.from(password, 'utf8'), salt, KEY_LEN, options(params));
  return `$scrypt$ln=${ln},r=8,p=1$${b64(salt)}$${b64(key)}`;
}

module.exports = { parse, verify, hash, DEFAULT_LN };
