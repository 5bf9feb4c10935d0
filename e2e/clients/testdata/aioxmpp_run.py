"""One client run with aioxmpp, as an application built on it logs in.

Usage: python3 aioxmpp_run.py JSON, where JSON holds jid, password, host,
port, direct_tls, ca_file, peer, send and want (see driver.go, Exchange).
The security layer is aioxmpp's default (make_security_layer) with koi's
certificate added to the trust store through the ssl_context_factory hook
that aioxmpp documents for this; SASL is aioxmpp's own choice. It exits 0
once the message is sent and, when want is set, the answer arrived.
"""

import asyncio
import json
import logging
import sys

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher
import aioxmpp.security_layer


async def run(a):
    def ssl_context():
        ctx = aioxmpp.security_layer.default_ssl_context()
        ctx.load_verify_locations(a["ca_file"])
        return ctx

    layer = aioxmpp.make_security_layer(a["password"], ssl_context_factory=ssl_context)
    connector = (aioxmpp.connector.XMPPOverTLSConnector() if a["direct_tls"]
                 else aioxmpp.connector.STARTTLSConnector())
    client = aioxmpp.PresenceManagedClient(
        aioxmpp.JID.fromstr(a["jid"]), layer,
        override_peer=[(a["host"], a["port"], connector)])
    got = asyncio.get_running_loop().create_future()

    def message(msg):
        body = msg.body.any() if msg.body else None
        logging.info("got %s from %s: %r", msg.type_, msg.from_, body)
        if body == a["want"] and not got.done():
            got.set_result(True)

    disp = client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
    disp.register_callback(aioxmpp.MessageType.CHAT, None, message)
    disp.register_callback(aioxmpp.MessageType.NORMAL, None, message)
    client.presence = aioxmpp.PresenceState(True)
    async with client.connected():
        logging.info("logged in as %s", client.local_jid)
        msg = aioxmpp.Message(to=aioxmpp.JID.fromstr(a["peer"]), type_=aioxmpp.MessageType.CHAT)
        msg.body[None] = a["send"]
        await client.send(msg)
        logging.info("sent %r to %s", a["send"], a["peer"])
        if a["want"]:
            await asyncio.wait_for(got, 20)


def main():
    a = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(a))
    print("aioxmpp", aioxmpp.__version__, "ok")


if __name__ == "__main__":
    main()
