"""One client run with slixmpp, as a bot built on it would log in.

Usage: python3 slixmpp_run.py JSON, where JSON holds jid, password, host,
port, direct_tls, ca_file, peer, send and want (see driver.go, Exchange).
slixmpp picks its SASL mechanism and channel binding itself; the only
settings made here are the server address and the CA to trust. It exits 0
once the message is sent and, when want is set, the answer arrived.
"""

import asyncio
import json
import logging
import sys

import slixmpp


class Bot(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ok = False
        self.ca_certs = a["ca_file"]
        # Direct TLS is enable_direct_tls in newer slixmpp, use_ssl here.
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)
        self.add_event_handler("failed_auth", lambda _: logging.error("failed_auth"))
        self.add_event_handler("disconnected", lambda _: self.loop.stop() if False else None)

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.send_message(mto=self.a["peer"], mbody=self.a["send"], mtype="chat")
        logging.info("sent %r to %s", self.a["send"], self.a["peer"])
        if not self.a["want"]:
            self.ok = True
            self.disconnect()

    def message(self, msg):
        logging.info("got %s from %s: %r", msg["type"], msg["from"], msg["body"])
        if msg["type"] in ("chat", "normal") and msg["body"] == self.a["want"]:
            self.ok = True
            self.disconnect()


def main():
    a = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bot = Bot(a)
    bot.connect((a["host"], a["port"]), use_ssl=a["direct_tls"])
    bot.loop.run_until_complete(bot.disconnected)
    print("slixmpp", slixmpp.__version__, "ok" if bot.ok else "FAILED")
    sys.exit(0 if bot.ok else 1)


if __name__ == "__main__":
    main()
