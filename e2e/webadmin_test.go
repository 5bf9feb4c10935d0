package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostOnline is a JavaScript predicate: the hosts table shows n online
// users for host.
const hostOnline = `(host, n) => {
	const c = document.querySelector('#hosts tr[data-host="' + host + '"] .online');
	return c !== null && c.textContent === n;
}`

// atLeast is a JavaScript predicate: the number in element id is n or
// more.
const atLeast = `(id, n) => Number(document.getElementById(id).textContent) >= n`

// raisedPixels counts the pixels of the series' colours (the swatches
// with those ids) in the upper three quarters of a graph: zero while the
// lines lie on the baseline, more once a rate above zero has been drawn.
const raisedPixels = `(canvasID, ...colourIDs) => {
	const c = document.getElementById(canvasID);
	const want = colourIDs.map((id) => getComputedStyle(document.getElementById(id)).backgroundColor.match(/\d+/g).map(Number));
	const d = c.getContext('2d').getImageData(0, 0, c.width, Math.floor(c.height * 0.75)).data;
	let n = 0;
	for (let i = 0; i < d.length; i += 4) {
		if (want.some((w) => Math.abs(d[i] - w[0]) < 10 && Math.abs(d[i + 1] - w[1]) < 10 && Math.abs(d[i + 2] - w[2]) < 10)) n++;
	}
	return n;
}`

// The web admin page in a real browser, against a real koi: a wrong token
// shows the API's refusal; the right one shows status, per-host online
// counts and plugin health, which follow two mellium clients logging in
// and out; the stanza graph rises when they exchange messages, the login
// counters count them and a wrong password; the restart button replaces
// the plugin's process; the token survives a reload of the tab (and only
// there: sessionStorage) and is gone after logging out.
func TestWebAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	browser := newBrowser(ctx, t)

	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	// No metrics block: the page's counters must not depend on it.
	adminAddr := addAdmin(t, path)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	srv.waitListening(t, adminAddr)
	srv.addUser(t, "alice@localhost", "alice-pw")
	srv.addUser(t, "bob@localhost", "bob-pw")

	base := "http://" + adminAddr
	page := openPage(t, browser, "admin", base+"/")

	// A wrong token: the API's refusal is on the page, nothing is kept.
	page.do("log in with a wrong token",
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token-0123456789"),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	refusal := eval[string](page, "read the login error", `document.getElementById('login-error').textContent`)
	if !strings.Contains(refusal, "401") || !strings.Contains(refusal, "wrong token: the bearer token is not admin.token") {
		t.Errorf("wrong token: the page says %q, want the API's 401 and its text", refusal)
	}
	if eval[bool](page, "is the dashboard shown", `!document.getElementById('dashboard').hidden`) {
		t.Error("wrong token: the dashboard is shown")
	}
	if kept := eval[bool](page, "read sessionStorage", `sessionStorage.getItem('koi-admin-token') !== null`); kept {
		t.Error("wrong token: kept in sessionStorage")
	}
	page.screenshot("webadmin-wrong-token.png")

	// The right token.
	page.do("log in",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("dashboard")),
	)
	if loc := eval[string](page, "read the address", `location.href`); loc != base+"/admin/" {
		t.Errorf("the page's address after logging in is %q, want %q: the token must not be in it", loc, base+"/admin/")
	}
	if !eval[bool](page, "read the form's value", `document.getElementById('token').value === ''`) {
		t.Error("the token is left in the form after logging in")
	}
	page.waitUntil("localhost shows 0 online", hostOnline, "localhost", "0")
	page.waitUntil("example.test shows 0 online", hostOnline, "example.test", "0")
	page.waitUntil("the plugin is healthy", `() => {
		const c = document.querySelector('#plugins tr[data-plugin="store"] .health');
		return c !== null && c.textContent === 'healthy';
	}`)
	if v := eval[string](page, "read the version", `document.getElementById('version').textContent`); !strings.HasPrefix(v, "version ") {
		t.Errorf("version %q", v)
	}
	// A few samples with nothing going on: the line lies on the baseline.
	page.waitUntil("the first counters", `() => document.getElementById('updated').textContent !== ''`)
	time.Sleep(3 * time.Second)
	if n := eval[int](page, "read the graph", "("+raisedPixels+")('stanza-graph', 'color-stanzas-in', 'color-stanzas-out')"); n != 0 {
		t.Errorf("the stanza graph rose (%d pixels) before any client connected", n)
	}

	// Two clients log in (and one attempt fails): the counts follow.
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	cctx, ccancel := context.WithTimeout(ctx, 2*waitTimeout)
	if c, err := connect(cctx, t, o, "alice@localhost/wrong", "wrong-pw"); err == nil {
		c.close()
		t.Fatal("alice logged in with a wrong password")
	}
	ccancel()
	alice := login(t, o, "alice@localhost/web", "alice-pw")
	bob := login(t, o, "bob@localhost/web", "bob-pw")
	for _, c := range []*client{alice, bob} {
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	page.waitUntil("localhost shows 2 online", hostOnline, "localhost", "2")
	page.waitUntil("two sessions in the status", `() => document.getElementById('sessions').textContent === '2'`)
	page.waitUntil("the other host still shows 0", hostOnline, "example.test", "0")
	page.waitUntil("two successful logins counted", atLeast, "total-logins-success", 2)
	page.waitUntil("the wrong password counted", atLeast, "total-logins-failure", 1)
	page.waitUntil("two connections open", `() => document.getElementById('connections-open').textContent === '2'`)

	// They chat: the stanza counters and the graph follow.
	time.Sleep(1500 * time.Millisecond) // the login's stanzas are counted
	before := eval[string](page, "read the stanzas in", `document.getElementById('total-stanzas-in').textContent`)
	in, err := strconv.Atoi(before)
	if err != nil {
		t.Fatalf("total stanzas in: %q", before)
	}
	const messages = 40
	for i := range messages {
		alice.send("<message to='bob@localhost/web' type='chat'><body>ping " + strconv.Itoa(i) + "</body></message>")
		bob.send("<message to='alice@localhost/web' type='chat'><body>pong " + strconv.Itoa(i) + "</body></message>")
	}
	for range messages {
		bob.expect("alice's ping", isMessageFrom(alice.jid))
		alice.expect("bob's pong", isMessageFrom(bob.jid))
	}
	page.waitUntil("the messages counted in", atLeast, "total-stanzas-in", in+2*messages)
	page.waitUntil("the messages counted out", atLeast, "total-stanzas-out", 2*messages)
	page.waitUntil("a stanza rate shown", atLeast, "peak-stanzas-in", 5)
	// In and out run level here (each message is one in and one out):
	// either line may be the one on top.
	page.waitUntil("the stanza graph rises", "(...a) => ("+raisedPixels+")(...a) > 0", "stanza-graph", "color-stanzas-in", "color-stanzas-out")
	page.waitUntil("the login graph rises", "(...a) => ("+raisedPixels+")(...a) > 0", "login-graph", "color-logins-success")
	page.screenshot("webadmin.png")

	// They leave.
	alice.close()
	bob.close()
	page.waitUntil("localhost shows 0 online again", hostOnline, "localhost", "0")

	// The restart button: a new process, healthy again.
	pid := eval[string](page, "read the plugin's pid", `document.querySelector('#plugins tr[data-plugin="store"] .pid').textContent`)
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("plugin pid %q", pid)
	}
	page.do("restart the plugin", chromedp.Click(chromedp.CSS(`#plugins tr[data-plugin="store"] button.restart`)))
	page.waitUntil("the plugin runs again in a new process", `(old) => {
		const row = document.querySelector('#plugins tr[data-plugin="store"]');
		if (row === null) return false;
		const pid = row.querySelector('.pid').textContent;
		return row.querySelector('.health').textContent === 'healthy' && pid !== old && pid !== '–';
	}`, pid)

	// A reload keeps the session (sessionStorage); logging out ends it.
	page.do("reload the page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("dashboard")))
	page.waitUntil("the hosts shown after the reload", hostOnline, "localhost", "0")
	page.do("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	if kept := eval[bool](page, "read sessionStorage", `sessionStorage.getItem('koi-admin-token') !== null`); kept {
		t.Error("the token is still in sessionStorage after logging out")
	}
	if errs := page.console.String(); strings.Contains(errs, "exception") || strings.Contains(errs, "error:") {
		t.Errorf("the page's console has errors:\n%s", errs)
	}
}
