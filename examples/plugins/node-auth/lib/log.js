'use strict';
// hclog's JSON line format on stderr: go-plugin parses each line on the
// host side (@level, @message, the rest as key/value pairs) and folds it
// into koi's log under the plugin's name. stdout is not ours: its first
// line is the handshake.

const levels = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

// KOI_PLUGIN_LOG_LEVEL is the level koi runs at (sdk.LogLevelEnv); lines
// koi would drop anyway are not written.
const min = levels[(process.env.KOI_PLUGIN_LOG_LEVEL || 'info').toLowerCase()] ?? levels.info;

// Once koi is gone its end of stderr is closed; a failed write must not
// crash the plugin before it has shut down.
process.stderr.on('error', () => {});

function write(level, message, fields) {
  if (levels[level] < min) return;
  const line = { '@level': level, '@message': message, '@timestamp': new Date().toISOString(), ...fields };
  process.stderr.write(JSON.stringify(line) + '\n');
}

module.exports = {
  trace: (msg, fields) => write('trace', msg, fields),
  debug: (msg, fields) => write('debug', msg, fields),
  info: (msg, fields) => write('info', msg, fields),
  warn: (msg, fields) => write('warn', msg, fields),
  error: (msg, fields) => write('error', msg, fields),
};
