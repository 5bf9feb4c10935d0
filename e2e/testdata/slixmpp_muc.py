"""slixmpp with its XEP-0045 plugin against koi: join a room, read its
history, say something and wait for an answer.

Usage: python3 slixmpp_muc.py JSON, where JSON holds jid, password, host,
port, ca_file, room, nick, say and want. Prints HISTORY lines, JOINED, then
GOT lines on stdout; exits 0 once a groupchat message whose body is want
arrived, after leaving the room.
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
        self.register_plugin("xep_0045")
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("groupchat_message", self.groupchat)

    async def start(self, _):
        self.send_presence()
        try:
            _, subject, _, history = await self.plugin["xep_0045"].join_muc_wait(
                self.a["room"], self.a["nick"], maxstanzas=10, timeout=15)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("join failed: %r" % e)
            return
        for m in history:
            print("HISTORY", m["body"], flush=True)
        print("JOINED", flush=True)
        self.send_message(mto=self.a["room"], mbody=self.a["say"], mtype="groupchat")

    def groupchat(self, msg):
        if msg.get_plugin("delay", check=True) is not None:
            return
        print("GOT", msg["body"], flush=True)
        if msg["body"] == self.a["want"] and msg["from"].resource != self.a["nick"]:
            self.plugin["xep_0045"].leave_muc(self.a["room"], self.a["nick"])
            self.loop.call_later(0.3, lambda: self.finish(None))


if __name__ == "__main__":
    koitest.main(Bot, disconnect=False)
