"""slixmpp with its XEP-0425 plugin (0.2, moderate:0) against koi: as a
moderator, join a room, retract a message by its stanza-id and wait for
the room's announcement; then say something and retract it with the
XEP-0424 plugin (0.3, by the message's id).

Usage: python3 slixmpp_muc_moderate.py JSON, where JSON holds jid,
password, host, port, ca_file, room, nick, id and reason. Prints JOINED,
then MODERATED <id> <by> once the announcement came, then RETRACTED once
the room relayed its own retraction, then OK; FAILED <why> on an error.
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
        for p in ("xep_0030", "xep_0045", "xep_0424", "xep_0425"):
            self.register_plugin(p)
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("moderated_message", self.moderated)
        self.add_event_handler("groupchat_message", self.groupchat)

    async def start(self, _):
        self.send_presence()
        try:
            await self.plugin["xep_0045"].join_muc_wait(
                JID(self.a["room"]), self.a["nick"], maxstanzas=0, timeout=15)
            print("JOINED", flush=True)
            await self.plugin["xep_0425"].moderate(
                JID(self.a["room"]), self.a["id"], self.a["reason"], timeout=10)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("%r" % e)

    def moderated(self, msg):
        m = msg["apply_to"]["moderated"]
        print("MODERATED", msg["apply_to"]["id"], m["by"], flush=True)
        if msg["apply_to"]["id"] == self.a["id"]:
            self.send_message(mto=self.a["room"], mbody="oops", mtype="groupchat")
            # slixmpp sets no id of its own choosing: the room keeps the one
            # it made, which the echo shows.

    def groupchat(self, msg):
        if msg.get_plugin("delay", check=True) is not None or msg["from"].resource != self.a["nick"]:
            return
        if msg["body"] == "oops":
            self.plugin["xep_0424"].send_retraction(JID(self.a["room"]), msg["id"], mtype="groupchat")
        elif msg["apply_to"]["id"]:
            print("RETRACTED", flush=True)
            self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot)
