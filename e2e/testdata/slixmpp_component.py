"""An external component (XEP-0114) written with slixmpp's ComponentXMPP,
as gateways and bots are, against koi.

Usage: python3 slixmpp_component.py JSON, where JSON holds domain, secret,
host and port, and ca_file for a TLS listener. It answers disco#info, version and ping (slixmpp's plugins),
echoes every message ("echo: BODY", from the address it was sent to), and on
a message "query me" sends a version IQ to the sender and reports the answer
in a message "iq answer: TYPE CONDITION". Prints READY once the handshake
succeeded, then one line per event (GOT, IQ); exits 0 on a message "bye".
"""

import asyncio

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

import koitest


class Gateway(koitest.Done, slixmpp.ComponentXMPP):
    def __init__(self, a):
        super().__init__(a["domain"], a["secret"], a["host"], a["port"])
        if a.get("ca_file"):
            # TLS from the first byte; slixmpp checks the certificate
            # against the component's own domain.
            self.ca_certs = a["ca_file"]
        for p in ("xep_0030", "xep_0092", "xep_0199"):
            self.register_plugin(p)
        self["xep_0030"].add_identity(category="gateway", itype="irc", name="koi test gateway")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("disconnected", lambda _: self.finish("disconnected"))

    def start(self, _):
        print("READY", flush=True)

    async def message(self, msg):
        body = msg["body"]
        print("GOT", msg["from"], msg["to"], body, flush=True)
        if body == "bye":
            self.finish(None)
            return
        if body == "query me":
            iq = self.make_iq_get(queryxmlns="jabber:iq:version", ito=msg["from"], ifrom=msg["to"])
            try:
                r = await iq.send(timeout=10)
                answer = r["type"]
            except IqError as e:
                answer = "error " + e.iq["error"]["condition"]
            except IqTimeout:
                answer = "timeout"
            print("IQ", answer, flush=True)
            self.send_message(mto=msg["from"], mfrom=msg["to"], mbody="iq answer: " + answer, mtype="chat")
            return
        self.send_message(mto=msg["from"], mfrom=msg["to"], mbody="echo: " + body, mtype="chat")


if __name__ == "__main__":
    koitest.main(Gateway, timeout=60,
                 connect=lambda gw, a: gw.connect(use_ssl=bool(a.get("ca_file"))))
