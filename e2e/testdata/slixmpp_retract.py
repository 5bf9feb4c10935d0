"""slixmpp with its XEP-0424 plugin (0.3, by the message's id in a
fastening) against koi, in a one-to-one chat: check that the server
advertises retraction, send a message to a peer, retract it, and read the
own archive with the XEP-0313 plugin until the message is a tombstone,
which slixmpp's own stanza classes must recognise.

Usage: python3 slixmpp_retract.py JSON, where JSON holds jid, password,
host, port, ca_file and peer. Prints FEATURES, then SENT <id> and
RETRACTED once both are out, then TOMBSTONE <id> <stamp> and RETRACTION
once the archive has both, then OK; FAILED <why> on an error.
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
        for p in ("xep_0030", "xep_0313", "xep_0359", "xep_0424"):
            self.register_plugin(p)
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        self.send_presence()
        try:
            info = await self.plugin["xep_0030"].get_info(jid=self.boundjid.bare, timeout=15)
            features = info["disco_info"]["features"]
            for f in ("urn:xmpp:message-retract:1", "urn:xmpp:message-retract:1#tombstone"):
                if f not in features:
                    self.finish("the account does not advertise " + f)
                    return
            print("FEATURES", flush=True)
            peer = JID(self.a["peer"])
            msg = self.make_message(mto=peer, mbody="sent to the wrong person", mtype="chat")
            msg["origin_id"]["id"] = msg["id"]
            msg.send()
            print("SENT", msg["id"], flush=True)
            self.plugin["xep_0424"].send_retraction(peer, msg["id"])
            print("RETRACTED", flush=True)
            # The tombstone is put in place a moment after the retraction
            # is archived: read the archive until it is there.
            for _ in range(100):
                tomb, retraction = None, False
                async for m in self.plugin["xep_0313"].iterate(jid=self.boundjid.bare, rsm={"max": 10}):
                    fwd = m["mam_result"]["forwarded"]["stanza"]
                    if fwd["id"] == msg["id"]:
                        if fwd.get_plugin("retracted", check=True) is not None:
                            tomb = fwd
                        elif fwd["body"]:
                            tomb = None
                    elif fwd["apply_to"]["id"] == msg["id"]:
                        retraction = True
                if tomb is not None and retraction:
                    if tomb["body"]:
                        self.finish("the tombstone keeps the body: %s" % tomb)
                        return
                    print("TOMBSTONE", tomb["id"], tomb["retracted"]["stamp"], flush=True)
                    print("RETRACTION", flush=True)
                    self.finish(None)
                    return
                await asyncio.sleep(0.1)
            self.finish("no tombstone in the archive")
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("%r" % e)


if __name__ == "__main__":
    koitest.main(Bot)
