'use strict';
// `plugin.js hash [-ln N]`: reads one password on stdin (a trailing newline
// is dropped) and prints its scrypt hash for the user file. On stdin, not
// as an argument, so it stays out of the shell history and ps.

const fs = require('node:fs');
const scrypt = require('./scrypt');

async function main(args) {
  let ln = scrypt.DEFAULT_LN;
  if (args.length === 2 && args[0] === '-ln' && /^\d+$/.test(args[1])) {
    ln = Number(args[1]);
  } else if (args.length !== 0) {
    process.stderr.write('usage: plugin.js hash [-ln N] < password\n');
    process.exit(2);
  }
  const password = fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (password === '') {
    process.stderr.write('empty password\n');
    process.exit(1);
  }
  process.stdout.write((await scrypt.hash(password, ln)) + '\n');
}

module.exports = { main };
