// One client run with @xmpp/client (xmpp.js), as a Node bot logs in.
//
// Usage: node xmppjs_run.mjs JSON, where JSON holds jid, password, host,
// port, direct_tls, websocket_url, peer, send and want (see driver.go,
// Exchange). The service is xmpp:// (STARTTLS), xmpps:// (direct TLS) or
// the WebSocket URL; SASL is the library's choice. Node trusts koi's
// certificate through NODE_EXTRA_CA_CERTS, set by the driver. It exits 0
// once the message is sent and, when want is set, the answer arrived.
import { client, xml } from "@xmpp/client";

// Node before 22 has no global WebSocket; xmpp.js expects one.
if (!globalThis.WebSocket) {
  globalThis.WebSocket = (await import("ws")).WebSocket;
}

const a = JSON.parse(process.argv[2]);
const [username, domain] = a.jid.split("@");
const service = a.websocket_url
  ? a.websocket_url
  : `${a.direct_tls ? "xmpps" : "xmpp"}://${a.host}:${a.port}`;

const xmpp = client({ service, domain, username, password: a.password });
// One attempt per run: the matrix counts logins, so no silent reconnects.
xmpp.reconnect.stop();

const log = (...args) => console.error(new Date().toISOString(), ...args);
xmpp.on("error", (err) => log("error:", err));
xmpp.on("status", (s) => log("status:", s));
xmpp.on("input", (s) => log("RECV", s));
xmpp.on("output", (s) => log("SEND", s));

let ok = false;
const timer = setTimeout(() => {
  log("timed out waiting for", JSON.stringify(a.want));
  process.exit(1);
}, 25000);

const finish = async () => {
  ok = true;
  clearTimeout(timer);
  await xmpp.stop();
};

xmpp.on("stanza", async (st) => {
  if (!st.is("message")) return;
  const body = st.getChildText("body");
  log("got", st.attrs.type, "from", st.attrs.from, JSON.stringify(body));
  if (a.want && body === a.want && !ok) await finish();
});

xmpp.on("online", async (address) => {
  log("online as", address.toString());
  await xmpp.send(xml("presence"));
  await xmpp.send(
    xml("message", { type: "chat", to: a.peer }, xml("body", {}, a.send)),
  );
  log("sent", JSON.stringify(a.send), "to", a.peer);
  if (!a.want) await finish();
});

try {
  await xmpp.start();
} catch (err) {
  log("start failed:", err);
  process.exit(1);
}
process.on("exit", () => {
  console.log("@xmpp/client", ok ? "ok" : "FAILED");
  process.exitCode = ok ? 0 : 1;
});
