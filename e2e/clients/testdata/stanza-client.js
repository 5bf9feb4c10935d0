'use strict';
// Drives StanzaJS (npm "stanza" 12) for koi's real-client matrix. It logs in
// over RFC 7395 WebSocket with stanza's own defaults (SASL mechanism and all),
// sends one chat message and, when XMPP_WANT is set, waits for a chat message
// with exactly that body. Exit status 0 on success; 1 with the reason on
// stderr otherwise.
//
// Environment (set by stanza.go):
//   XMPP_WS_URL    ws:// or wss:// endpoint
//   XMPP_JID       bare JID to log in as
//   XMPP_PASSWORD  its password
//   XMPP_PEER      where to send the message
//   XMPP_SEND      the body to send
//   XMPP_WANT      the body to wait for ("" to only send)
//   XMPP_TIMEOUT_MS  give up after this long (default 30000)
//   XMPP_DEBUG     print the raw XML both ways to stderr
// For wss, NODE_EXTRA_CA_CERTS names the CA to trust.
const { createClient } = require('stanza');

const env = process.env;
for (const k of ['XMPP_WS_URL', 'XMPP_JID', 'XMPP_PASSWORD', 'XMPP_PEER', 'XMPP_SEND']) {
  if (!env[k]) {
    console.error(`stanza-client: ${k} is not set`);
    process.exit(2);
  }
}
const want = env.XMPP_WANT || '';

const client = createClient({
  jid: env.XMPP_JID,
  password: env.XMPP_PASSWORD,
  resource: 'stanza',
  // The endpoint is given, so stanza skips XEP-0156 discovery; no BOSH.
  transports: { websocket: env.XMPP_WS_URL, bosh: false },
});

let finished = false;
function finish(code, why) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  (code ? console.error : console.log)(`stanza-client: ${why}`);
  // Log out cleanly (<close/>), but do not hang on it.
  const t = setTimeout(() => process.exit(code), 2000);
  client.once('disconnected', () => {
    clearTimeout(t);
    process.exit(code);
  });
  client.disconnect();
}

const timer = setTimeout(
  () => finish(1, `timed out after ${env.XMPP_TIMEOUT_MS || 30000} ms` + (want ? ` waiting for ${JSON.stringify(want)}` : '')),
  Number(env.XMPP_TIMEOUT_MS || 30000));

client.on('raw:outgoing', (data) => {
  const m = /<auth[^>]*mechanism=["']([^"']+)["']/.exec(data);
  if (m) console.log(`stanza-client: mechanism=${m[1]}`);
  if (env.XMPP_DEBUG) console.error(`-> ${data}`);
});
if (env.XMPP_DEBUG) client.on('raw:incoming', (data) => console.error(`<- ${data}`));

client.on('auth:failed', () => finish(1, 'authentication failed'));
client.on('stream:error', (e) => finish(1, `stream error: ${JSON.stringify(e)}`));
client.on('disconnected', () => finish(1, 'disconnected before the exchange was done'));

client.on('chat', (msg) => {
  if (want && msg.body === want) finish(0, `received ${JSON.stringify(msg.body)} from ${msg.from}`);
});

client.on('session:started', async () => {
  console.log(`stanza-client: logged in as ${client.jid}`);
  try {
    client.sendPresence();
    client.sendMessage({ to: env.XMPP_PEER, type: 'chat', body: env.XMPP_SEND });
    // A ping answered means the message before it left: stanza sends in order.
    await client.ping();
  } catch (err) {
    finish(1, `sending failed: ${err && err.message ? err.message : JSON.stringify(err)}`);
    return;
  }
  if (!want) finish(0, 'sent');
});

client.connect();
