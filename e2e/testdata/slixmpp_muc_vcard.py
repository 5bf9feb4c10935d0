"""slixmpp with its XEP-0054 plugin against koi: as an owner, publish a
room's vCard with an avatar (XEP-0486), read it back, and read the
avatar's hash from the room's disco#info.

Usage: python3 slixmpp_muc_vcard.py JSON, where JSON holds jid, password,
host, port, ca_file, room and photo (the image's bytes, base64). Prints
SET, then PHOTO <type> <sha1 of the photo read back>, then HASH <each
muc#roominfo_avatarhash value>, then OK; FAILED <why> on an error.
"""

import asyncio
import base64
import hashlib

import slixmpp

import koitest


class Bot(koitest.Done, slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ca_certs = a["ca_file"]
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0054")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        room = self.a["room"]
        try:
            vcard = self.plugin["xep_0054"].make_vcard()
            vcard["PHOTO"]["TYPE"] = "image/png"
            vcard["PHOTO"]["BINVAL"] = base64.b64decode(self.a["photo"])
            await self.plugin["xep_0054"].publish_vcard(vcard, jid=room, timeout=10)
            print("SET", flush=True)
            got = await self.plugin["xep_0054"].get_vcard(room, cached=False, timeout=10)
            p = got["vcard_temp"]["PHOTO"]
            print("PHOTO", p["TYPE"], hashlib.sha1(p["BINVAL"]).hexdigest(), flush=True)
            info = await self.plugin["xep_0030"].get_info(jid=room, timeout=10)
            for field in info.xml.iter("{jabber:x:data}field"):
                if field.get("var") == "muc#roominfo_avatarhash":
                    for v in field.iter("{jabber:x:data}value"):
                        print("HASH", v.text, flush=True)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("%r" % e)
            return
        self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot)
