"""Three slixmpp clients against koi's PEP: alice on two resources, bob a
contact. Uses slixmpp's own plugins: XEP-0084 avatars over XEP-0163 and
XEP-0060 (bob's +notify comes from XEP-0115 caps), XEP-0048 bookmarks
stored as XEP-0049 private XML and read back through XEP-0223 PEP and as
XEP-0402 items.

Usage: python3 slixmpp_pep.py JSON, where JSON holds alice, bob (bare
JIDs), password, host, port and ca_file. Prints a line per step passed
and OK at the end; exits 1 with FAILED and the reason otherwise.
"""

import asyncio

import slixmpp
from slixmpp.plugins.xep_0048 import Bookmarks

import koitest

PLUGINS = ["xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084",
           "xep_0049", "xep_0223", "xep_0048"]


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, a):
        super().__init__(jid, a["password"])
        self.ca_certs = a["ca_file"]
        for p in PLUGINS:
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        self.avatars = asyncio.Queue()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("avatar_metadata_publish", self.metadata)

    async def start(self, _):
        await self["xep_0115"].update_caps()
        self.send_presence()
        self.started.set_result(True)

    def metadata(self, msg):
        item = msg["pubsub_event"]["items"]["item"]
        self.avatars.put_nowait((msg["from"].bare, item["id"]))


async def run(a):
    alice = Client(a["alice"] + "/slix1", a)
    alice2 = Client(a["alice"] + "/slix2", a)
    bob = Client(a["bob"] + "/slix", a)
    for c in (alice, alice2, bob):
        c.connect((a["host"], a["port"]))
    await asyncio.wait_for(asyncio.gather(alice.started, alice2.started, bob.started), 20)
    print("CONNECTED", flush=True)
    # Let koi ask for the capabilities it was told of.
    await asyncio.sleep(1.5)

    png = b"\x89PNG\r\n\x1a\nslixmpp avatar"
    avatar_id = alice["xep_0084"].generate_id(png)
    await alice["xep_0084"].publish_avatar(png)
    await alice["xep_0084"].publish_avatar_metadata(
        items=[{"id": avatar_id, "type": "image/png", "bytes": len(png)}])
    while True:
        frm, got = await asyncio.wait_for(bob.avatars.get(), 10)
        if frm == a["alice"] and got == avatar_id:
            break
    print("AVATAR NOTIFIED", flush=True)
    iq = await bob["xep_0084"].retrieve_avatar(a["alice"], avatar_id)
    data = iq["pubsub"]["items"]["item"]["avatar_data"]["value"]
    if data != png:
        return "avatar data %r" % (data,)
    print("AVATAR FETCHED", flush=True)

    bm = Bookmarks()
    bm.add_conference("koi@conference.localhost", "alice", name="Koi", autojoin=True)
    await alice["xep_0048"].set_bookmarks(bm, method="xep_0049")
    iq = await alice2["xep_0048"].get_bookmarks(method="xep_0223")
    confs = iq["pubsub"]["items"]["item"]["bookmarks"]["conferences"]
    if [str(c["jid"]) for c in confs] != ["koi@conference.localhost"] or confs[0]["name"] != "Koi":
        return "bookmarks through PEP: %s" % iq
    print("BOOKMARKS LEGACY PEP", flush=True)
    iq = await alice2["xep_0060"].get_items(a["alice"], "urn:xmpp:bookmarks:1")
    ids = [i["id"] for i in iq["pubsub"]["items"]]
    if ids != ["koi@conference.localhost"]:
        return "XEP-0402 items %s" % ids
    print("BOOKMARKS XEP-0402", flush=True)
    try:
        await bob["xep_0060"].get_items(a["alice"], "urn:xmpp:bookmarks:1")
        return "bob read alice's bookmarks"
    except slixmpp.exceptions.IqError as e:
        if e.condition != "not-allowed":
            return "bob reading bookmarks: %s" % e.condition
    print("BOOKMARKS PRIVATE", flush=True)
    for c in (alice, alice2, bob):
        c.disconnect()
    return None


if __name__ == "__main__":
    koitest.main_run(run, timeout=40)
