'use strict';
// The user file: one JSON object of user name -> scrypt hash, the same
// users for every host that names the plugin:
//
//   { "alice": "$scrypt$ln=15,r=8,p=1$…$…" }
//
// It is read again when it changes, so `plugin.js hash` plus an edit adds
// a user without a restart; a file that turns bad is logged and the last
// good version kept.

const fs = require('node:fs');
const scrypt = require('./scrypt');
const log = require('./log');

// loadUsers parses the file's bytes into a Map of name -> parsed hash, or
// throws naming the first bad entry.
function loadUsers(buf) {
  let obj;
  try {
    obj = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new Error(`not JSON: ${e.message}`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new Error('must be a JSON object of user name to scrypt hash');
  }
  const users = new Map();
  for (const [name, hash] of Object.entries(obj)) {
    if (name === '') throw new Error('an empty user name');
    if (typeof hash !== 'string') throw new Error(`user ${JSON.stringify(name)}: the hash is not a string`);
    try {
      users.set(name, scrypt.parse(hash));
    } catch (e) {
      throw new Error(`user ${JSON.stringify(name)}: ${e.message}`);
    }
  }
  return users;
}

// UserFile is the loaded file plus what is needed to notice a change.
class UserFile {
  constructor(file, users) {
    this.file = file;
    this.users = users;
    this.stamp = stampOf(fs.statSync(file));
  }

  // current returns the users, re-reading the file first if it changed.
  async current() {
    let st;
    try {
      st = await fs.promises.stat(this.file);
    } catch (e) {
      log.warn('user file unreadable, keeping the last good one', { file: this.file, error: e.message });
      return this.users;
    }
    const stamp = stampOf(st);
    if (stamp === this.stamp) return this.users;
    this.stamp = stamp;
    try {
      this.users = loadUsers(await fs.promises.readFile(this.file));
      log.info('user file reloaded', { file: this.file, users: this.users.size });
    } catch (e) {
      log.error('user file is broken, keeping the last good one', { file: this.file, error: e.message });
    }
    return this.users;
  }
}

const stampOf = (st) => `${st.mtimeMs}/${st.size}/${st.ino}`;

module.exports = { loadUsers, UserFile };
