"""slixmpp with its XEP-0050 and XEP-0133 plugins against koi, as an admin
of the server: list the commands, add a user (the form, then the form
submitted under the session id), count the online users, and send an
announcement.

Usage: python3 slixmpp_adhoc.py JSON, where JSON holds jid, password,
host, port, ca_file, domain, newuser, newpassword and announcement. Prints
COMMANDS <n>, ADDED <note>, ONLINE <n>, ANNOUNCED <note>, then OK; FAILED
<why> on an error.
"""

import asyncio

import slixmpp

import koitest

ADMIN = "http://jabber.org/protocol/admin#"


class Bot(koitest.Done, slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a["jid"], a["password"])
        self.a = a
        self.ca_certs = a["ca_file"]
        for p in ("xep_0004", "xep_0030", "xep_0050", "xep_0133"):
            self.register_plugin(p)
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.start)

    async def run(self, node, fields):
        """Executes node and, if it asks for a form, submits fields."""
        domain = self.a["domain"]
        adhoc = self.plugin["xep_0050"]
        resp = await adhoc.send_command(domain, ADMIN + node, timeout=10)
        cmd = resp["command"]
        if cmd["status"] == "executing":
            if "complete" not in cmd["actions"]:
                raise Exception("%s: no complete action in %s" % (node, cmd["actions"]))
            form = self.plugin["xep_0004"].make_form(ftype="submit")
            for var, value in fields.items():
                form.add_field(var=var, value=value)
            resp = await adhoc.send_command(domain, ADMIN + node, action="complete",
                                            payload=form, sessionid=cmd["sessionid"], timeout=10)
            cmd = resp["command"]
        if cmd["status"] != "completed":
            raise Exception("%s: status %s" % (node, cmd["status"]))
        return cmd

    async def start(self, _):
        self.send_presence()
        try:
            items = await self.plugin["xep_0133"].get_commands(jid=self.a["domain"], timeout=10)
            nodes = [i[1] for i in items["disco_items"]["items"]]
            if ADMIN + "add-user" not in nodes:
                self.finish("add-user is not listed: %s" % nodes)
                return
            print("COMMANDS", len(nodes), flush=True)
            new = self.a["newuser"]
            cmd = await self.run("add-user", {"accountjid": new, "password": self.a["newpassword"],
                                              "password-verify": self.a["newpassword"]})
            print("ADDED", cmd["notes"][0][1], flush=True)
            cmd = await self.run("get-online-users-num", {})
            print("ONLINE", cmd["form"]["values"]["onlineusersnum"], flush=True)
            cmd = await self.run("announce", {"subject": "Maintenance", "announcement": self.a["announcement"]})
            print("ANNOUNCED", cmd["notes"][0][1], flush=True)
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            self.finish("%r" % e)
            return
        self.finish(None)


if __name__ == "__main__":
    koitest.main(Bot)
