"""Two slixmpp clients against koi's XEP-0398 conversion, each with its
own kind of avatar: alice sets hers with XEP-0153 (a vCard PHOTO), bob
with XEP-0084 (PEP). bob hears of alice's as a PEP avatar and fetches
it; alice reads bob's from his vCard and sees its hash in his presence.

Usage: python3 slixmpp_avatar_conversion.py JSON, where JSON holds alice,
bob (bare JIDs), password, host, port and ca_file. Prints a line per step
passed and OK at the end; exits 1 with FAILED and the reason otherwise.
"""

import asyncio
import hashlib
import logging

import slixmpp

import koitest

PLUGINS = ["xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084",
           "xep_0054", "xep_0153"]


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, a):
        super().__init__(jid, a["password"])
        self.ca_certs = a["ca_file"]
        for p in PLUGINS:
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        self.avatars = asyncio.Queue()
        self.hashes = asyncio.Queue()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("avatar_metadata_publish", self.metadata)
        self.add_event_handler("presence_available", self.presence)

    async def start(self, _):
        await self["xep_0115"].update_caps()
        self.send_presence()
        self.started.set_result(True)

    def metadata(self, msg):
        item = msg["pubsub_event"]["items"]["item"]
        self.avatars.put_nowait((msg["from"].bare, item["id"]))

    def presence(self, pres):
        self.hashes.put_nowait((pres["from"].bare, pres["vcard_temp_update"]["photo"]))


async def wait_for(queue, want, what):
    while True:
        got = await asyncio.wait_for(queue.get(), 10)
        if got == want:
            return
        logging.info("%s: not yet %r", what, got)


async def run(a):
    alice = Client(a["alice"] + "/vcard", a)
    bob = Client(a["bob"] + "/pep", a)
    for c in (alice, bob):
        c.connect((a["host"], a["port"]))
    await asyncio.wait_for(asyncio.gather(alice.started, bob.started), 20)
    print("CONNECTED", flush=True)
    # Let koi ask for the capabilities it was told of.
    await asyncio.sleep(1.5)

    png = b"\x89PNG\r\n\x1a\nalice's vCard avatar"
    await alice["xep_0153"].set_avatar(avatar=png, mtype="image/png")
    alice_id = hashlib.sha1(png).hexdigest()
    await wait_for(bob.avatars, (a["alice"], alice_id), "alice's PEP avatar")
    iq = await bob["xep_0084"].retrieve_avatar(a["alice"], alice_id)
    if iq["pubsub"]["items"]["item"]["avatar_data"]["value"] != png:
        return "alice's avatar through PEP: %s" % iq
    print("VCARD TO PEP", flush=True)

    png2 = b"\x89PNG\r\n\x1a\nbob's PEP avatar"
    bob_id = bob["xep_0084"].generate_id(png2)
    await bob["xep_0084"].publish_avatar(png2)
    await bob["xep_0084"].publish_avatar_metadata(
        items=[{"id": bob_id, "type": "image/png", "bytes": len(png2)}])
    await wait_for(alice.hashes, (a["bob"], bob_id), "bob's hash in presence")
    iq = await alice["xep_0054"].get_vcard(a["bob"], cached=False)
    photo = iq["vcard_temp"]["PHOTO"]
    if photo["BINVAL"] != png2 or photo["TYPE"] != "image/png":
        return "bob's vCard: %s" % iq
    print("PEP TO VCARD", flush=True)
    for c in (alice, bob):
        c.disconnect()
    return None


if __name__ == "__main__":
    koitest.main_run(run, timeout=40)
