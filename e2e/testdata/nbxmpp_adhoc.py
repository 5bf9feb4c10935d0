"""nbxmpp (Gajim's library) against koi, as a host's admin, through its
AdHoc module as Gajim's command window drives it: list the server's
commands, count the online users, and add a user by filling in and
completing the form the server sent.

Usage: python3 nbxmpp_adhoc.py JSON, where JSON holds jid, password, host,
port, ca_file, domain, newuser and newpassword. Prints COMMANDS <n>,
ONLINE <n>, ADDED <note>, then OK; FAILED <why> on an error. The server's
certificate is pinned as Gajim pins one the user accepted.
"""

import json
import logging
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import AdHocAction, AdHocStatus, ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.modules import dataforms  # noqa: E402
from nbxmpp.protocol import JID  # noqa: E402

ADMIN = "http://jabber.org/protocol/admin#"


def main():
    a = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loop = GLib.MainLoop()
    state = {"err": "did not finish"}
    me = JID.from_string(a["jid"])
    client = Client(log_context="adhoc")
    client.set_domain(me.domain)
    client.set_username(me.localpart)
    client.set_resource("gajim")
    client.set_password(a["password"])
    client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(a["ca_file"])])
    client.set_connection_types([ConnectionType.START_TLS])
    client.set_custom_host("%s:%d" % (a["host"], a["port"]), ConnectionProtocol.TCP, ConnectionType.START_TLS)
    adhoc = client.get_module("AdHoc")
    commands = {}

    def fail(why):
        state["err"] = why
        client.disconnect()

    def finish():
        state["err"] = None
        client.disconnect()

    def listed(task):
        try:
            for c in task.finish():
                commands[str(c.node)] = c
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            return fail("command list: %r" % e)
        print("COMMANDS", len(commands), flush=True)
        cmd = commands.get(ADMIN + "get-online-users-num")
        if cmd is None:
            return fail("get-online-users-num is not listed")
        adhoc.execute_command(cmd, callback=counted)

    def counted(task):
        try:
            cmd = task.finish()
            form = dataforms.extend_form(node=cmd.data)
            print("ONLINE", form["onlineusersnum"].value, flush=True)
        except Exception as e:  # noqa: BLE001
            return fail("get-online-users-num: %r" % e)
        adhoc.execute_command(commands[ADMIN + "add-user"], callback=add_form)

    def add_form(task):
        try:
            cmd = task.finish()
            if cmd.status != AdHocStatus.EXECUTING or AdHocAction.COMPLETE not in cmd.actions:
                return fail("add-user: status %s, actions %s" % (cmd.status, cmd.actions))
            form = dataforms.extend_form(node=cmd.data)
            form["accountjid"].value = a["newuser"]
            form["password"].value = a["newpassword"]
            form["password-verify"].value = a["newpassword"]
            form.type_ = "submit"
            adhoc.execute_command(cmd, AdHocAction.COMPLETE, form.get_purged(), callback=added)
        except Exception as e:  # noqa: BLE001
            return fail("add-user form: %r" % e)

    def added(task):
        try:
            cmd = task.finish()
            if not cmd.is_completed:
                return fail("add-user: status %s" % cmd.status)
            print("ADDED", cmd.notes[0].text, flush=True)
        except Exception as e:  # noqa: BLE001
            return fail("add-user: %r" % e)
        finish()

    def on_connected(_client, _signal):
        adhoc.request_command_list(JID.from_string(a["domain"]), callback=listed)

    def on_disconnected(_client, _signal):
        loop.quit()

    def on_failed(_client, _signal):
        state["err"] = "connection failed: %s" % (client.get_error(),)
        loop.quit()

    def timeout():
        state["err"] = "timed out"
        loop.quit()
        return False

    client.subscribe("connected", on_connected)
    client.subscribe("disconnected", on_disconnected)
    client.subscribe("connection-failed", on_failed)
    GLib.timeout_add_seconds(25, timeout)
    client.connect()
    loop.run()
    err = state["err"]
    print("FAILED " + err if err else "OK", flush=True)
    sys.exit(1 if err else 0)


if __name__ == "__main__":
    main()
