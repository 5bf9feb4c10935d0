"""slixmpp with its XEP-0191 and XEP-0377 plugins (reporting:0) against
koi: check that the server takes reports, then block a JID with a spam
report and read the blocklist back.

Usage: python3 slixmpp_report.py JSON, where JSON holds jid, password,
host, port, ca_file, domain, spammer and text. Prints FEATURE, BLOCKED
<jid> once the blocklist holds it, then OK; FAILED <why> on an error.
"""

import asyncio

import slixmpp
from slixmpp import JID

import koitest


class Bot(koitest.Done, slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ca_certs = a["ca_file"]
        for p in ("xep_0030", "xep_0191", "xep_0377"):
            self.register_plugin(p)
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        try:
            info = await self.plugin["xep_0030"].get_info(jid=self.a["domain"], timeout=10)
            if "urn:xmpp:reporting:0" not in info["disco_info"]["features"]:
                self.finish("the server does not advertise urn:xmpp:reporting:0")
                return
            print("FEATURE", flush=True)
            iq = self.make_iq_set()
            iq["block"]["items"] = [JID(self.a["spammer"])]
            iq["block"]["report"]["spam"] = True
            iq["block"]["report"]["text"] = self.a["text"]
            await iq.send(timeout=10)
            blocked = await self.plugin["xep_0191"].get_blocked(timeout=10)
            for j in blocked["blocklist"]["items"]:
                print("BLOCKED", j, flush=True)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("%r" % e)
            return
        self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot)
