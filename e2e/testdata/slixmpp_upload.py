"""slixmpp with its XEP-0363 plugin against koi: find the upload service
through disco, request a slot, PUT the file (aiohttp) and send the GET URL
to another user.

Usage: python3 slixmpp_upload.py JSON, where JSON holds jid, password,
host, port, ca_file, file and to. Prints "URL <get url>" on stdout and
exits 0 once the message with the link is sent; exits 1 on any failure.
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
        self.register_plugin("xep_0066")
        self.register_plugin("xep_0363")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("disconnected", lambda _: self.finish("disconnected"))

    async def discover(self):
        """XEP-0363 §3 discovery, done here with the disco plugin: the
        plugin's own (get_info_from_domain) passes coroutines to
        asyncio.wait, which Python 3.11 refuses, in Debian 12's slixmpp
        1.8.3."""
        items = await self["xep_0030"].get_items(jid=self.boundjid.domain, timeout=10)
        for item in items["disco_items"]["items"]:
            info = await self["xep_0030"].get_info(jid=item[0], timeout=10)
            if ("store", "file") not in [i[:2] for i in info["disco_info"]["identities"]]:
                continue
            if "urn:xmpp:http:upload:0" not in info["disco_info"]["features"]:
                continue
            up = self["xep_0363"]
            up.upload_service = info["from"]
            for form in info["disco_info"].iterables:
                values = form["values"]
                if values.get("FORM_TYPE") == ["urn:xmpp:http:upload:0"]:
                    up.max_file_size = int(values["max-file-size"])
            return
        raise RuntimeError("no upload service in disco#items of " + self.boundjid.domain)

    async def start(self, _):
        try:
            await self.discover()
            url = await self["xep_0363"].upload_file(self.a["file"], timeout=20)
        except Exception as e:  # the test prints the log for any failure
            self.finish("upload failed: %r" % (e,))
            return
        print("URL " + url, flush=True)
        msg = self.make_message(mto=self.a["to"], mbody=url, mtype="chat")
        msg["oob"]["url"] = url
        msg.send()
        # Let the message leave before the stream closes.
        await asyncio.sleep(0.3)
        self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot, timeout=40)
