"""slixmpp with its XEP-0198 plugin against koi: enable stream management,
lose the TCP connection without closing the stream, reconnect and resume.

Usage: python3 slixmpp_sm.py JSON, where JSON holds jid, password, host,
port, ca_file and want. Prints ENABLED, DROPPED, RESUMED and GOT lines on
stdout for the test to follow; exits 0 once the message whose body is want
arrived on the resumed stream.
"""

import asyncio

import slixmpp

import koitest


class Bot(koitest.Done, slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ca_certs = a["ca_file"]
        self.register_plugin("xep_0198")
        self.dropped = False
        self.resumed_ok = False
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("sm_enabled", self.enabled)
        self.add_event_handler("session_resumed", self.resumed)
        self.add_event_handler("sm_failed", lambda _: self.finish("resumption failed"))
        self.add_event_handler("message", self.message)
        self.add_event_handler("disconnected", self.disc)

    async def start(self, _):
        self.send_presence()

    def enabled(self, ev):
        print("ENABLED", flush=True)
        self.loop.call_later(0.3, self.drop)

    def drop(self):
        # The network goes away: no </stream:stream>, just a dead socket.
        self.dropped = True
        self.transport.abort()

    def disc(self, _):
        if self.dropped and not self.resumed_ok:
            print("DROPPED", flush=True)
            self.loop.call_later(1.0, lambda: self.connect((self.a["host"], self.a["port"])))

    def resumed(self, _):
        self.resumed_ok = True
        print("RESUMED", flush=True)

    def message(self, msg):
        print("GOT", msg["body"], flush=True)
        if self.resumed_ok and msg["body"] == self.a["want"]:
            self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot, disconnect=False)
