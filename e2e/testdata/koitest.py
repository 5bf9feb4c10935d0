"""What the slixmpp_*.py scripts share: reading their JSON argument,
logging to stderr, running a bot until it is done, and the last line
(OK, or FAILED and why) with the exit status.

A script's bot mixes in Done and sets self.done to a future of its loop;
it calls self.finish(None) when all went well, or self.finish(why).
"""

import asyncio
import json
import logging
import sys


class Done:
    """Mixin for a slixmpp client or component: finish resolves
    self.done with err (None for success), the first call only."""

    def finish(self, err):
        if not self.done.done():
            self.done.set_result(err)


def args():
    """The script's JSON argument, after sending DEBUG logs to stderr."""
    a = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return a


def exit_with(err):
    """Prints OK and exits 0 if err is empty, else FAILED err and exits 1."""
    print("FAILED " + err if err else "OK", flush=True)
    sys.exit(1 if err else 0)


def connect_c2s(bot, a):
    bot.connect((a["host"], a["port"]))


def main(make, timeout=30, disconnect=True, connect=connect_c2s):
    """Builds make(a), connects it (by default to a's host and port), runs
    the loop until its done future holds a result, for at most timeout
    seconds (past that, asyncio's TimeoutError ends the script with exit
    status 1), disconnects it unless told not to, and exits with that
    result."""
    a = args()
    bot = make(a)
    connect(bot, a)
    err = bot.loop.run_until_complete(asyncio.wait_for(bot.done, timeout))
    if disconnect:
        bot.disconnect()
    exit_with(err)


def main_run(run, timeout=40):
    """Runs the coroutine run(a) for at most timeout seconds and exits
    with what it returns: None for success, or why it failed. A timeout
    or an exception counts as a failure too."""
    a = args()
    loop = asyncio.get_event_loop()
    try:
        err = loop.run_until_complete(asyncio.wait_for(run(a), timeout))
    except Exception as e:  # a timeout or a client library error
        err = "%s: %s" % (type(e).__name__, e)
    exit_with(err)
