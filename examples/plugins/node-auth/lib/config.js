'use strict';
// The plugin's block in config.hcl, which koi sends to Configure as JSON
// (and to `plugin.js validate` on stdin):
//
//   config = { file = "/etc/koi/users.json" }
//
// Shared by Configure and the validate command, so that `koi check-config`
// judges a config exactly as the start would.

const fs = require('node:fs');
const path = require('node:path');
const { loadUsers } = require('./users');

const KEYS = new Set(['file']);

// ConfigError carries problems, each {key, msg}, like sdk.ConfigErrors.
class ConfigError extends Error {
  constructor(problems) {
    super('invalid request: node-auth config: ' + problems.map((p) => (p.key ? `${p.key}: ${p.msg}` : p.msg)).join('; '));
    this.problems = problems;
  }
}

// parseConfig checks the raw JSON and loads the user file once, returning
// {file, users}; it throws a ConfigError.
function parseConfig(raw) {
  let cfg;
  try {
    cfg = JSON.parse(raw.length ? raw.toString('utf8') : '{}');
  } catch (e) {
    throw new ConfigError([{ msg: `not JSON: ${e.message}` }]);
  }
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
    throw new ConfigError([{ msg: 'must be an object' }]);
  }
  const problems = [];
  // A typo in config.hcl must not pass silently, as with sdk.Config.Decode.
  for (const k of Object.keys(cfg)) {
    if (!KEYS.has(k)) problems.push({ key: k, msg: 'unknown key' });
  }
  if (typeof cfg.file !== 'string' || cfg.file === '') {
    problems.push({ key: 'file', msg: 'is required: the JSON file of users and scrypt hashes' });
  }
  if (problems.length) throw new ConfigError(problems);
  // Relative to koi's working directory, which the plugin inherits.
  const file = path.resolve(cfg.file);
  let users;
  try {
    users = loadUsers(fs.readFileSync(file));
  } catch (e) {
    throw new ConfigError([{ key: 'file', msg: `${file}: ${e.message}` }]);
  }
  return { file, users };
}

module.exports = { parseConfig, ConfigError };
