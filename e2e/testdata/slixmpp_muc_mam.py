"""slixmpp with its XEP-0313 plugin against koi: read a room's archive
(MAM on the room JID) page by page, as a client catching up on a room.

Usage: python3 slixmpp_muc_mam.py JSON, where JSON holds jid, password,
host, port, ca_file, room and max (the page size). Prints a MSG line per
archived message (its sender, then its body), then OK; exits 1 with
FAILED on any error.
"""

import asyncio

import slixmpp

import koitest


class Bot(koitest.Done, slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ca_certs = a["ca_file"]
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0059")
        self.register_plugin("xep_0313")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        try:
            info = await self.plugin["xep_0030"].get_info(jid=self.a["room"], timeout=15)
            if "urn:xmpp:mam:2" not in info["disco_info"]["features"]:
                self.finish("the room does not advertise urn:xmpp:mam:2")
                return
            async for m in self.plugin["xep_0313"].iterate(
                    jid=self.a["room"], rsm={"max": self.a["max"]}):
                fwd = m["mam_result"]["forwarded"]["stanza"]
                print("MSG", fwd["from"], fwd["body"], flush=True)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("query failed: %r" % e)
            return
        self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot, disconnect=False)
