"""One client run with nbxmpp, driven through its Client API as Gajim does.

Usage: python3 nbxmpp_run.py JSON, where JSON holds jid, password, host,
port, direct_tls, ca_file, peer, send and want (see driver.go, Exchange).

nbxmpp runs on a GLib main loop and does TLS with Gio (GnuTLS), which does
not read SSL_CERT_FILE. Gajim trusts a self-signed server certificate by
pinning it: the user accepts it once and Gajim passes it to
set_accepted_certificates on every later connect. We do the same with the
certificate in ca_file, so nbxmpp accepts exactly that certificate (by
comparing it, Gio's is_same) and nothing else. SASL mechanism and channel
binding are nbxmpp's choice. It exits 0 once the message is sent and, when
want is set, the answer arrived.
"""

import json
import logging
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

import nbxmpp  # noqa: E402
from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.protocol import JID, Message, Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402


def main():
    a = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("run")
    loop = GLib.MainLoop()
    state = {"ok": False, "sent": False}
    me = JID.from_string(a["jid"])

    client = Client(log_context="run")
    client.set_domain(me.domain)
    client.set_username(me.localpart)
    client.set_resource("nbxmpp")
    client.set_password(a["password"])
    client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(a["ca_file"])])
    kind = ConnectionType.DIRECT_TLS if a["direct_tls"] else ConnectionType.START_TLS
    client.set_connection_types([kind])
    client.set_custom_host("%s:%d" % (a["host"], a["port"]), ConnectionProtocol.TCP, kind)

    def done(ok):
        state["ok"] = ok
        client.disconnect()

    def on_connected(_client, _signal):
        log.info("connected as %s (TLS %s)", client.get_bound_jid(), client.tls_version)
        client.send_stanza(Presence())
        client.send_stanza(Message(to=a["peer"], body=a["send"], typ="chat"))
        state["sent"] = True
        log.info("sent %r to %s", a["send"], a["peer"])
        if not a["want"]:
            done(True)

    def on_message(_client, stanza, _properties):
        body = stanza.getBody()
        log.info("got %s from %s: %r", stanza.getType(), stanza.getFrom(), body)
        if a["want"] and body == a["want"]:
            done(True)

    def on_disconnected(_client, _signal):
        log.info("disconnected: %s", client.get_error())
        loop.quit()

    def on_failed(_client, _signal):
        log.error("connection failed: %s", client.get_error())
        loop.quit()

    def timeout():
        log.error("timed out")
        loop.quit()
        return False

    client.subscribe("connected", on_connected)
    client.subscribe("disconnected", on_disconnected)
    client.subscribe("connection-failed", on_failed)
    client.register_handler(StanzaHandler(name="message", callback=on_message))
    GLib.timeout_add_seconds(25, timeout)
    client.connect()
    loop.run()
    print("nbxmpp", nbxmpp.__version__, "ok" if state["ok"] else "FAILED")
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
