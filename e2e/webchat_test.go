package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	pngenc "image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/koi-im/koi/internal/tcpproxy"
	"github.com/koi-im/koi/internal/testsvc"
)

// webchatConfig is koi as examples/webchat expects it: a websocket
// listener that lets the page's origin in, and the features Converse.js
// waits for before it opens a chat (the blocklist, XEP-0191) or asks for
// on login (the archive, XEP-0313), and a group chat service and an HTTP
// upload service (plain HTTP, as the page is), which Converse finds
// through disco.
var webchatConfig = template.Must(template.New("webchat").Parse(`# koi e2e webchat test config
log { level = "debug"  format = "text" }
listen "c2s"       { address = "{{.C2S}}"  starttls = "required" }
listen "c2s_tls"   { address = "{{.C2STLS}}" }
listen "websocket" { address = "{{.WS}}"  tls = false  origins = ["{{.Page}}"] }
tls { cert_file = "{{.Dir}}/tls/cert.pem"  key_file = "{{.Dir}}/tls/key.pem" }

plugin "store" {
  command = "{{.Plugin}}"
  config  = { driver = "sqlite"  dsn = "{{.Dir}}/koi.db" }
}

host "localhost" {
  auth      = "store"
  roster    = "store"
  offline   = "store"
  vcard     = "store"
  private   = "store"
  blocklist = "store"
  archive   = "store"
  muc       = "store"
  upload { listen = "{{.Upload}}"  tls = false  url_base = "http://{{.Upload}}"  max_file_size = 1000000 }
}

muc { enabled = true }

server { shutdown_timeout = "5s"  data_dir = "{{.Dir}}/data" }
metrics { address = "{{.Metrics}}" }
`))

// webchatEnv is koi with examples/webchat in front of it and a headless
// browser, alice and bob registered.
type webchatEnv struct {
	s       *server
	browser context.Context
	url     string          // the page
	metrics string          // koi's /metrics listener
	upload  string          // koi's HTTP upload listener
	proxy   *tcpproxy.Proxy // between the pages and koi's WebSocket listener
	log     *syncBuffer
}

// startWebchatEnv builds and starts examples/webchat against a koi of its
// own; the browser is given 10 minutes.
func startWebchatEnv(t *testing.T) *webchatEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	browser := newBrowser(ctx, t)
	pkg, err := testsvc.NPMInstall(ctx, "examples/webchat")
	testsvc.Require(t, err)

	dir := t.TempDir()
	webchatBin := filepath.Join(dir, "webchat")
	build := exec.CommandContext(ctx, "go", "build", "-o", webchatBin, ".")
	build.Dir = pkg
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/webchat: %v\n%s", err, out)
	}

	c2s, c2sTLS, ws, page, metrics, upload := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	var b bytes.Buffer
	err = webchatConfig.Execute(&b, map[string]string{
		"C2S": c2s, "C2STLS": c2sTLS, "WS": ws, "Page": page, "Dir": dir, "Plugin": pluginBin(), "Metrics": metrics,
		"Upload": upload,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := launch(t, dir, path, c2s, c2sTLS, options{}, nil)
	s.waitListening(t, ws)
	s.addUser(t, "alice@localhost", "alice-pw")
	s.addUser(t, "bob@localhost", "bob-pw")
	// The page reaches koi through a proxy that a test can cut, as a
	// phone's or a laptop's network drops.
	proxy, err := tcpproxy.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	web := startWebchat(t, webchatBin, page, "ws://"+proxy.Addr()+"/xmpp-websocket", filepath.Join(pkg, "node_modules", "converse.js", "dist"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webchat log:\n%s", web.String())
		}
	})
	return &webchatEnv{s: s, browser: browser, url: "http://" + page + "/", metrics: metrics, upload: upload, proxy: proxy, log: web}
}

// A real web client in a real browser: examples/webchat serves Converse.js
// pointed at koi's WebSocket listener, headless Chromium logs alice and bob
// in from two separate browser contexts (no shared storage), alice types a
// message to bob, and bob's page shows it. The screenshot of both pages is
// kept as a test artefact (go test -artifacts).
func TestWebchat(t *testing.T) {
	w := startWebchatEnv(t)
	s, metrics := w.s, w.metrics
	befriend(t, s)

	alice, bob := w.page(t, "alice", "alice"), w.page(t, "bob", "bob")

	// alice opens the chat with bob from the roster koi gave Converse and
	// sends; bob's page counts it as unread and bob opens it.
	alice.openChat("bob@localhost")
	const body = "hello bob, from a browser"
	alice.do("type the message", chromedp.SendKeys(chromedp.CSS(".chat-textarea"), body+"\r"))
	alice.waitText("her own message in her chat", body)
	bob.openUnread("alice@localhost")
	bob.waitText("alice's message", body)

	// And back: bob's answer reaches alice's open chat.
	const reply = "hi alice, 5 < 6 & welcome"
	bob.do("type the reply", chromedp.SendKeys(chromedp.CSS(".chat-textarea"), reply+"\r"))
	alice.waitText("bob's reply", reply)

	// alice retracts her message (XEP-0424) from its actions menu. koi
	// makes it a tombstone in both archives; bob's page shows it removed,
	// and so does a page of bob's that starts with empty storage and
	// loads the chat's history from his archive.
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	bobTCP := login(t, o, "bob@localhost/tcp", "bob-pw")
	defer bobTCP.close()
	id := archivedID(t, bobTCP, body)
	alice.retract(body)
	const removed = `(text) => document.querySelector(".chat-msg--retracted") !== null &&
		![...document.querySelectorAll(".chat-msg__text")].some(e => e.textContent.includes(text))`
	bob.waitUntil("alice's message shown as removed", removed, body)
	awaitTombstone(t, bobTCP, id)
	aliceTCP := login(t, o, "alice@localhost/tcp", "alice-pw")
	defer aliceTCP.close()
	awaitTombstone(t, aliceTCP, id)
	again := w.page(t, "bob-again", "bob")
	again.openChat("alice@localhost")
	again.waitText("bob's reply, from his archive", reply)
	again.waitUntil("alice's message shown as removed, from his archive", removed, body)

	// The browsers' WebSocket sessions count as the TCP ones do, with the
	// archive on.
	m := scrapeMetrics(t, "http://"+metrics+"/metrics")
	if m[`koi_logins_total{result="success"}`] < 4 || m[`koi_stanzas_in_total{type="message"}`] < 2 || m["koi_connections_open"] < 2 {
		t.Errorf("metrics after the chat: logins %v, messages in %v, connections open %v",
			m[`koi_logins_total{result="success"}`], m[`koi_stanzas_in_total{type="message"}`], m["koi_connections_open"])
	}
	if _, ok := m["koi_archive_queue_depth"]; !ok {
		t.Error("no koi_archive_queue_depth with the archive on")
	}

	screenshots("webchat-", alice, bob, again)
}

// befriend makes alice and bob subscribed to each other (RFC 6121) with
// TCP clients, so Converse shows each in the other's roster.
func befriend(t *testing.T, s *server) {
	t.Helper()
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/setup", "alice-pw")
	bob := login(t, o, "bob@localhost/setup", "bob-pw")
	defer alice.close()
	defer bob.close()
	for _, c := range []*client{alice, bob} {
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	for _, p := range [][2]*client{{alice, bob}, {bob, alice}} {
		from, to := p[0], p[1]
		fromBare, toBare := strings.Split(from.jid, "/")[0], strings.Split(to.jid, "/")[0]
		from.send("<presence to='" + toBare + "' type='subscribe'/>")
		to.expect("a subscription request", isPresence("subscribe", fromBare))
		to.send("<presence to='" + fromBare + "' type='subscribed'/>")
		from.expect("subscribed", isPresence("subscribed", toBare))
	}
}

// startWebchat runs the example's binary and waits until it serves.
func startWebchat(t *testing.T, bin, listen, wsURL, dist string) *syncBuffer {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(bin, "-listen", listen, "-websocket", wsURL, "-domain", "localhost", "-dist", dist)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting webchat: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(log.String(), "webchat listening") {
		select {
		case <-done:
			t.Fatalf("webchat exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webchat not listening after %v: %s", startTimeout, log.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return log
}

// login fills Converse's login form; the user name takes the page's
// default domain.
func (p *browserPage) login(user, password string) {
	p.t.Helper()
	p.do("log in",
		chromedp.WaitVisible(chromedp.ID("converse-login-jid")),
		chromedp.SendKeys(chromedp.ID("converse-login-jid"), user),
		chromedp.SendKeys(chromedp.ID("converse-login-password"), password),
		chromedp.Click(chromedp.CSS("#converse-login button[type=submit]")),
	)
}

// openChat clicks contact in the roster, which opens the chat with it.
func (p *browserPage) openChat(contact string) {
	p.t.Helper()
	sel := chromedp.CSS(fmt.Sprintf("a.open-chat[data-jid=%q]", contact))
	p.do("open the chat with "+contact,
		chromedp.WaitVisible(sel),
		chromedp.Click(sel),
		chromedp.WaitVisible(chromedp.CSS(".chat-textarea")),
	)
}

// waitText waits until a message in the open chat reads text.
func (p *browserPage) waitText(what, text string) {
	p.t.Helper()
	p.waitUntil(fmt.Sprintf("%s (%q) is on the page", what, text),
		`(text) => [...document.querySelectorAll(".chat-msg__text")].some(e => e.textContent.includes(text))`, text)
}

// retract retracts the user's own message that reads text, confirming it
// in the dialog that follows.
func (p *browserPage) retract(text string) {
	p.t.Helper()
	p.chooseRetract(text)
	confirm := chromedp.CSS("converse-confirm-modal form.confirm button[type=submit]")
	p.do("confirm the retraction", chromedp.WaitVisible(confirm), chromedp.Click(confirm))
}

// archivedID waits until c's archive holds a message whose body is body
// and returns its id.
func archivedID(t *testing.T, c *client, body string) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		page := c.mam("<max>20</max><before/>")
		for _, m := range page.msgs {
			if bodyOf(m) == body {
				return m.attr("id")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no message %q in the archive: %v", c.jid, body, page.msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Group chat in the browser: alice and bob join a room through Converse's
// "Add a groupchat" dialog (alice's join creates it, and she owns it), bob
// finds alice's message in the room's history and they talk; then alice,
// as a moderator, retracts bob's message from its actions menu (XEP-0425)
// with a reason. Both pages show it removed, and a page of bob's with
// empty storage, which joins the room again from the bookmark Converse
// made, finds it removed in the history koi sends, alice's message still
// there. Last, alice renames the room in its configuration form, and
// every page shows the new name.
func TestWebchatGroupChat(t *testing.T) {
	w := startWebchatEnv(t)
	alice, bob := w.page(t, "alice", "alice"), w.page(t, "bob", "bob")

	const room = "lobby@conference.localhost"
	alice.joinRoom(room, "alice")
	const hello = "hello room, from a browser"
	alice.do("type in the room", chromedp.SendKeys(chromedp.CSS(".chatroom .chat-textarea"), hello+"\r"))
	alice.waitText("her own message in the room", hello)

	bob.joinRoom(room, "bob")
	bob.waitText("alice's message, from the room's history", hello)
	const spam = "buy cheap watches at example.com"
	bob.do("type in the room", chromedp.SendKeys(chromedp.CSS(".chatroom .chat-textarea"), spam+"\r"))
	alice.waitText("bob's message", spam)

	alice.moderate(spam, "spam")
	const removed = `(text) => document.querySelector(".chat-msg--retracted") !== null &&
		![...document.querySelectorAll(".chat-msg__text")].some(e => e.textContent.includes(text))`
	alice.waitUntil("bob's message shown as removed", removed, spam)
	bob.waitUntil("his message shown as removed", removed, spam)

	// Converse bookmarked the room for autojoin when bob entered it
	// (XEP-0402, kept in koi's PEP): a page of his with empty storage
	// joins it by itself.
	again := w.page(t, "bob-again", "bob")
	again.do("the bookmarked room opens by itself", chromedp.WaitVisible(chromedp.CSS(".chatroom .chat-textarea")))
	again.waitText("alice's message, from the room's history", hello)
	again.waitUntil("bob's message shown as removed, from the room's history", removed, spam)

	// alice renames the room in its configuration form (XEP-0045 §10.2,
	// the form as koi sends it, drawn and submitted by Converse); the
	// occupants' pages show the new name.
	const name = "The koi lobby"
	alice.clickWhenPresent("the Configure action chosen", `.configure-chatroom-button`)
	alice.waitUntil("the room renamed in its form", `(name) => {
		const f = document.querySelector('form.chatroom-form input[name="muc#roomconfig_roomname"]')?.form;
		if (!f) return false;
		f.elements["muc#roomconfig_roomname"].value = name;
		f.requestSubmit();
		return true;
	}`, name)
	for _, p := range []*browserPage{alice, bob, again} {
		p.waitUntil("the room's new name in its heading", `(name) => [...document.querySelectorAll(".chatroom .chatbox-title__text")].some(e => e.textContent.trim() === name)`, name)
	}
	screenshots("webchat-muc-", alice, bob, again)
}

// joinRoom joins room as nick through Converse's "Add a groupchat" dialog
// and waits for the room's view.
func (p *browserPage) joinRoom(room, nick string) {
	p.t.Helper()
	p.clickWhenPresent("the Add a groupchat menu item chosen", `.show-add-muc-modal`)
	address := chromedp.CSS(`converse-add-muc-modal input[name="chatroom"]`)
	nickname := chromedp.CSS(`converse-add-muc-modal input[name="nickname"]`)
	p.do("fill in the dialog",
		chromedp.WaitVisible(address), chromedp.SendKeys(address, room),
		chromedp.WaitVisible(nickname), chromedp.SetValue(nickname, nick),
		chromedp.Click(chromedp.CSS(`converse-add-muc-modal input[type="submit"]`)),
	)
	p.do("the room opens", chromedp.WaitVisible(chromedp.CSS(".chatroom .chat-textarea")))
}

// chooseRetract chooses Retract in the actions menu of the message that
// reads text. The menu's items are on the page whether it is open or not;
// clicking one is what choosing it does.
func (p *browserPage) chooseRetract(text string) {
	p.t.Helper()
	p.waitUntil(fmt.Sprintf("Retract chosen on the message %q", text), `(text) => {
		const m = [...document.querySelectorAll(".chat-msg")].find(e => e.querySelector(".chat-msg__text")?.textContent.includes(text));
		const item = m?.querySelector(".chat-msg__action-retract");
		if (!item) return false;
		item.click();
		return true;
	}`, text)
}

// moderate retracts someone else's message in the open room that reads
// text, as a moderator, giving reason in the dialog that asks for one.
func (p *browserPage) moderate(text, reason string) {
	p.t.Helper()
	p.chooseRetract(text)
	field := chromedp.CSS("converse-confirm-modal form.confirm input")
	p.do("give the reason and confirm", chromedp.WaitVisible(field), chromedp.SendKeys(field, reason),
		chromedp.Click(chromedp.CSS("converse-confirm-modal form.confirm button[type=submit]")))
}

// OMEMO (XEP-0384) between two browsers: Converse.js publishes each page's
// device list and bundle on koi's PEP, alice's page finds bob's device
// through them, she turns encryption on and writes, and bob's page
// decrypts it. koi carries only ciphertext: the message in bob's archive
// has an <encrypted/> payload and not the text.
func TestWebchatOMEMO(t *testing.T) {
	w := startWebchatEnv(t)
	befriend(t, w.s)
	bob, alice := w.page(t, "bob", "bob"), w.page(t, "alice", "alice")

	alice.openChat("bob@localhost")
	alice.waitUntil("OMEMO offered for the chat with bob", `() => {
		const b = document.querySelector(".toggle-omemo");
		return b !== null && b.dataset.disabled === "false";
	}`)
	alice.do("turn OMEMO on", chromedp.Click(chromedp.CSS(".toggle-omemo")),
		chromedp.WaitVisible(chromedp.CSS(".toggle-omemo converse-icon.fa-lock")))
	const secret = "a secret for bob, end to end"
	alice.do("type the message", chromedp.SendKeys(chromedp.CSS(".chat-textarea"), secret+"\r"))
	alice.waitText("her own message in her chat", secret)
	bob.openUnread("alice@localhost")
	bob.waitText("alice's message, decrypted", secret)

	o := dialOpts{addr: w.s.c2s, tls: w.s.tlsConfig(t, "localhost")}
	bobTCP := login(t, o, "bob@localhost/tcp", "bob-pw")
	defer bobTCP.close()
	deadline := time.Now().Add(waitTimeout)
	for {
		var encrypted *element
		for _, m := range bobTCP.mam("<max>20</max><before/>").msgs {
			if strings.Contains(m.String(), secret) {
				t.Fatalf("koi carried the text in the clear: %s", m)
			}
			if m.child("eu.siacs.conversations.axolotl", "encrypted") != nil || m.child("urn:xmpp:omemo:2", "encrypted") != nil {
				encrypted = m
			}
		}
		if encrypted != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no OMEMO message in bob's archive")
		}
		time.Sleep(50 * time.Millisecond)
	}
	screenshots("webchat-omemo-", alice, bob)
}

// HTTP File Upload (XEP-0363) from the browser: alice picks a picture in
// Converse's file dialog, Converse asks koi for a slot and PUTs the file
// across origins (koi's upload service answers the CORS preflight), and
// sends its URL; bob's page shows the picture, whose bytes are the file's.
func TestWebchatFileUpload(t *testing.T) {
	w := startWebchatEnv(t)
	befriend(t, w.s)
	file, png := writePNG(t, "koi-test.png", 8)

	alice, bob := w.page(t, "alice", "alice"), w.page(t, "bob", "bob")
	alice.openChat("bob@localhost")
	alice.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS(".chatbox input.fileupload"), []string{file}))
	bob.openUnread("alice@localhost")
	prefix := "http://" + w.upload + "/"
	bob.waitUntil("the picture shown", `(prefix) => [...document.querySelectorAll("img.chat-image")].some(i => i.src.startsWith(prefix) && i.complete && i.naturalWidth === 8)`, prefix)
	src := eval[string](bob, "the picture's address", `[...document.querySelectorAll("img.chat-image")].map(i => i.src).find(s => s.startsWith(`+strconv.Quote(prefix)+`))`)
	resp, err := http.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, png) {
		t.Fatalf("GET %s: %s, %d bytes, %v; want the %d bytes uploaded", src, resp.Status, len(got), err, len(png))
	}
	screenshots("webchat-upload-", alice, bob)
}

// Stream management from the browser (XEP-0198 over WebSocket): bob's
// Converse.js enables resumption; his network drops (the proxy closes the
// connection and refuses new ones), koi keeps his session, and a message
// alice sends meanwhile waits in it; when the network is back Converse
// resumes the stream, and the message is on his page. The log tells that
// the stream was resumed, not replaced by a new login that would have
// found the message in the archive.
func TestWebchatStreamResumption(t *testing.T) {
	w := startWebchatEnv(t)
	befriend(t, w.s)
	bob := w.page(t, "bob", "bob")
	bob.openChat("alice@localhost")
	waitLog(t, w.s, `stream management enabled:.* resumable=true`)
	alice := login(t, dialOpts{addr: w.s.c2s, tls: w.s.tlsConfig(t, "localhost")}, "alice@localhost/tcp", "alice-pw")
	defer alice.close()
	alice.send("<presence/>")
	alice.expect("bob's presence", func(e *element) bool {
		return e.is("", "presence") && e.attr("type") == "" && strings.HasPrefix(e.attr("from"), "bob@localhost/")
	})

	w.proxy.Cut()
	waitLog(t, w.s, `connection lost, session kept for resumption`)
	const during = "sent while your network was down"
	alice.send("<message to='bob@localhost' type='chat' id='away-1'><body>" + during + "</body></message>")
	if err := w.proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, w.s, `stream resumed`)
	bob.waitText("the message sent while he was away", during)
	screenshots("webchat-resumed-", bob)
}

// page opens a page of its own (no storage shared with the others) named
// name, and logs user in there (password user-pw).
func (w *webchatEnv) page(t *testing.T, name, user string) *browserPage {
	t.Helper()
	p := openPage(t, w.browser, name, w.url)
	p.login(user, user+"-pw")
	return p
}

// openUnread waits until contact's roster entry counts unread messages (in
// full screen Converse opens no chat by itself) and opens the chat.
func (p *browserPage) openUnread(contact string) {
	p.t.Helper()
	p.do("wait for "+contact+"'s message to be counted as unread",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("a.open-chat.unread-msgs[data-jid=%q]", contact))))
	p.openChat(contact)
}

// screenshots keeps each page as a test artefact named prefix + its name.
func screenshots(prefix string, pages ...*browserPage) {
	for _, p := range pages {
		p.screenshot(prefix + p.name + ".png")
	}
}

// Avatars (XEP-0054 and XEP-0153) from the browser: alice picks a picture
// in Converse's profile dialog, Converse stores it in her vCard on koi and
// announces its hash in her presence, and bob's page, seeing the new hash,
// fetches her vCard and shows the picture on her roster entry: the same
// picture her vCard holds when bob asks koi for it.
func TestWebchatAvatar(t *testing.T) {
	w := startWebchatEnv(t)
	befriend(t, w.s)
	file, _ := writePNG(t, "avatar.png", 32)
	alice, bob := w.page(t, "alice", "alice"), w.page(t, "bob", "bob")

	alice.clickWhenPresent("her profile dialog opened", `a.show-profile`)
	alice.do("choose the picture", chromedp.SetUploadFiles(chromedp.CSS(`converse-profile-modal input[name="avatar_image"]`), []string{file}))
	alice.waitUntil("the profile saved", `() => {
		const f = document.querySelector("converse-profile-modal #profile-tabpanel form");
		if (!f) return false;
		f.requestSubmit();
		return true;
	}`)
	const shown = `[...document.querySelectorAll('a.open-chat[data-jid="alice@localhost"]')].map(a => a.closest("li")?.querySelector("svg.avatar image")?.getAttribute("href")).find(h => h && h.startsWith("data:image/"))`
	bob.waitUntil("alice's picture on her roster entry", `() => !!(`+shown+`)`)
	href := eval[string](bob, "the picture shown", shown)

	o := dialOpts{addr: w.s.c2s, tls: w.s.tlsConfig(t, "localhost")}
	bobTCP := login(t, o, "bob@localhost/tcp", "bob-pw")
	defer bobTCP.close()
	r := bobTCP.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
	photo := r.path("vCard", "PHOTO")
	if photo == nil || photo.path("BINVAL") == nil {
		t.Fatalf("alice's vCard has no photo: %s", r)
	}
	typ, data, _ := strings.Cut(strings.TrimPrefix(href, "data:"), ";base64,")
	binval := strings.Join(strings.Fields(photo.path("BINVAL").Text), "")
	if photo.path("TYPE") == nil || photo.path("TYPE").Text != typ || binval != data {
		t.Fatalf("bob's page shows %s (%d base64 bytes), alice's vCard holds %s (%d)", typ, len(data), photo, len(binval))
	}
	screenshots("webchat-avatar-", alice, bob)
}

// Adding a contact from the browser (RFC 6121 §3): alice adds bob in
// Converse's "Add a contact" dialog, bob's page shows her request and he
// accepts it in its dialog, naming her. koi's rosters then have alice
// subscribed to bob (to) and bob approving her (from), as TCP clients of
// each read them. Converse.js 14's dialog does not ask for bob's
// subscription in return (its "subscribe back" call reaches its event
// system, not the network), so the subscription stays one-way.
func TestWebchatAddContact(t *testing.T) {
	w := startWebchatEnv(t)
	alice, bob := w.page(t, "alice", "alice"), w.page(t, "bob", "bob")
	alice.clickWhenPresent("the Add a contact dialog opened", `a.add-contact`)
	jid := chromedp.CSS(`converse-add-contact-modal form.add-xmpp-contact input[name="jid"]`)
	alice.do("fill in bob's address", chromedp.WaitVisible(jid), chromedp.SendKeys(jid, "bob@localhost"),
		chromedp.SendKeys(chromedp.CSS(`converse-add-contact-modal form.add-xmpp-contact input[name="name"]`), "Bob"),
		chromedp.Click(chromedp.CSS(`converse-add-contact-modal form.add-xmpp-contact [type="submit"]`)))

	bob.clickWhenPresent("alice's request accepted", `converse-roster-contact .accept-xmpp-request`)
	name := chromedp.CSS(`converse-accept-contact-request-modal form input[name="name"]`)
	bob.do("name alice and accept", chromedp.WaitVisible(name), chromedp.SendKeys(name, "Alice"),
		chromedp.Click(chromedp.CSS(`converse-accept-contact-request-modal form [type="submit"]`)))

	o := dialOpts{addr: w.s.c2s, tls: w.s.tlsConfig(t, "localhost")}
	for _, u := range [][3]string{{"alice", "bob", "to"}, {"bob", "alice", "from"}} {
		c := login(t, o, u[0]+"@localhost/tcp", u[0]+"-pw")
		deadline := time.Now().Add(waitTimeout)
		for {
			r := c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
			var sub string
			for _, it := range r.path("query").children("jabber:iq:roster", "item") {
				if it.attr("jid") == u[1]+"@localhost" && it.attr("ask") == "" {
					sub = it.attr("subscription")
				}
			}
			if sub == u[2] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's roster has %s with subscription %q, want %s: %s", u[0], u[1], sub, u[2], r)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.close()
	}
	// Subscribed, alice gets bob's presence: he shows online on her roster.
	alice.waitUntil("bob online on her roster", `() => document.querySelector('a.open-chat[data-jid="bob@localhost"] .contact-name--online') !== null`)
	screenshots("webchat-contact-", alice, bob)
}

// clickWhenPresent waits until the page has an element matching selector
// and clicks it, as a user chooses a menu item: the items of Converse's
// menus are on the page whether the menu is open or not.
func (p *browserPage) clickWhenPresent(what, selector string) {
	p.t.Helper()
	p.waitUntil(what, `(sel) => {
		const e = document.querySelector(sel);
		if (!e) return false;
		e.click();
		return true;
	}`, selector)
}

// writePNG writes a size×size picture to a temporary file named name and
// returns its path and bytes.
func writePNG(t *testing.T, name string, size int) (path string, data []byte) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := pngenc.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}
