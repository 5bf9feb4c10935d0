'use strict';
// `plugin.js validate [-json]`: the sdk's validate command (sdk/validate.go),
// which `koi check-config` runs with the config block as JSON on stdin.
// Exit 0 when the config is good, 1 with problems, 2 on usage errors.

const fs = require('node:fs');
const { parseConfig, ConfigError } = require('./config');
const { CAPABILITIES_JSON } = require('./backend');

const MAX_CONFIG_BYTES = 1 << 20;

function main(args) {
  const asJSON = args.includes('-json') || args.includes('--json');
  if (args.some((a) => !['-json', '--json'].includes(a))) {
    process.stderr.write('usage: plugin.js validate [-json] < config.json\n');
    process.exit(2);
  }
  let raw;
  try {
    raw = fs.readFileSync(0);
  } catch (e) {
    process.stderr.write(`reading the config from standard input: ${e.message}\n`);
    process.exit(2);
  }
  if (raw.length > MAX_CONFIG_BYTES) {
    process.stderr.write(`the config on standard input is over ${MAX_CONFIG_BYTES} bytes\n`);
    process.exit(2);
  }
  let report;
  try {
    parseConfig(raw);
    report = { ok: true, capabilities: CAPABILITIES_JSON };
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems : [{ msg: String(e.message || e) }];
    report = { ok: false, capabilities: {}, problems };
  }
  if (asJSON) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else if (report.ok) {
    process.stdout.write('auth: read-only\n');
  } else {
    for (const p of report.problems) process.stderr.write((p.key ? `${p.key}: ` : '') + p.msg + '\n');
  }
  process.exitCode = report.ok ? 0 : 1;
}

module.exports = { main };
