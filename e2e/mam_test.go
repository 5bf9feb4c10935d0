package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/koi-im/koi/plugins/mongo/mongotest"
)

// The message archive end to end (XEP-0313 with XEP-0359 stanza ids and
// XEP-0059 paging): real clients, koi, and the archive in the sql plugin
// (SQLite) or a Mongo-only koi (the mongo plugin on FerretDB, see
// plugins/mongo/mongotest), including a plugin killed while it writes and
// a shutdown with writes pending.

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsSID     = "urn:xmpp:sid:0"
	nsForward = "urn:xmpp:forward:0"
)

var (
	mongoPluginOnce sync.Once
	mongoPluginPath string
	mongoPluginErr  error
)

// mongoPluginBin builds the mongo plugin next to the others, once.
func mongoPluginBin(t testing.TB) string {
	t.Helper()
	mongoPluginOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			mongoPluginErr = err
			return
		}
		mongoPluginPath = filepath.Join(binDir, "plugins", "koi-backend-mongo")
		cmd := exec.Command("go", "build", "-o", mongoPluginPath, "./plugins/mongo/cmd/koi-backend-mongo")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			mongoPluginErr = fmt.Errorf("building the mongo plugin: %w\n%s", err, out)
		}
	})
	if mongoPluginErr != nil {
		t.Fatal(mongoPluginErr)
	}
	return mongoPluginPath
}

// archiveConfig is koi with the archive on: everything in the sql plugin
// (SQLite), or everything, accounts included, in the mongo plugin.
var archiveConfig = template.Must(template.New("archive").Parse(`# koi e2e archive test config
log { level = "debug"  format = "text" }
listen "c2s"     { address = "{{.C2S}}"  starttls = "required" }
listen "c2s_tls" { address = "{{.C2STLS}}" }
tls { cert_file = "{{.Dir}}/tls/cert.pem"  key_file = "{{.Dir}}/tls/key.pem" }
{{if .SQL}}
plugin "store" {
  command = "{{.SQL}}"
  config  = { driver = "sqlite"  dsn = "{{.Dir}}/koi.db" }
}
{{end}}{{if .Mongo}}
plugin "mongo" {
  command = "{{.Mongo}}"
  config  = { uri = "{{.URI}}"  database = "{{.Database}}"  fulltext = true }
}
{{end}}
host "localhost" {
  auth    = "{{.Data}}"
  roster  = "{{.Data}}"
  offline = "{{.Data}}"
  vcard   = "{{.Data}}"
  private = "{{.Data}}"
  archive = "{{.Data}}"
  registration = true
}

limits {
  auth_failures_per_ip = 0
  auth_failures_per_account = 0
}

server { shutdown_timeout = "10s"  data_dir = "{{.Dir}}/data" }
`))

// archiveServer starts koi with the archive in backend ("sql" or "mongo").
// dir is reused when not empty, so a test can restart koi on the same
// data.
func archiveServer(t *testing.T, backend, dir string, mongoURI, mongoDB string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	data := map[string]any{"C2S": c2s, "C2STLS": c2sTLS, "Dir": dir, "SQL": pluginBin(), "Data": "store"}
	if backend == "mongo" {
		data["Mongo"], data["URI"], data["Database"], data["Data"] = mongoPluginBin(t), mongoURI, mongoDB, "mongo"
		data["SQL"] = ""
	}
	var b bytes.Buffer
	if err := archiveConfig.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, path, c2s, c2sTLS, options{}, nil)
}

// mamPage is one answered MAM query.
type mamPage struct {
	ids    []string // archive ids, in the order the results came
	bodies []string
	msgs   []*element // the forwarded messages
	fin    *element
	reply  *element
}

func (p mamPage) rsm(name string) string {
	if el := p.fin.child(nsRSM, "set").child(nsRSM, name); el != nil {
		return el.Text
	}
	return ""
}

func (p mamPage) complete() bool { return p.fin.attr("complete") == "true" }

// mam runs a query on the client's own archive: form fields as var/value
// pairs, then the RSM set's contents.
func (c *client) mam(set string, fields ...string) mamPage {
	c.t.Helper()
	return c.mamWithin(waitTimeout, set, fields...)
}

// mamWithin is mam waiting up to d for the answer: a query waits for the
// user's pending archive writes, which wait for a plugin that restarts.
func (c *client) mamWithin(d time.Duration, set string, fields ...string) mamPage {
	c.t.Helper()
	return c.mamTo("", d, set, fields...)
}

// mamTo is mamWithin on the archive at to ("": the user's own), a room's
// for one.
func (c *client) mamTo(to string, d time.Duration, set string, fields ...string) mamPage {
	c.t.Helper()
	if to != "" {
		to = " to='" + to + "'"
	}
	qid := newID()
	form := ""
	if len(fields) > 0 {
		form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsMAM + "</value></field>"
		for i := 0; i+1 < len(fields); i += 2 {
			form += "<field var='" + fields[i] + "'><value>" + fields[i+1] + "</value></field>"
		}
		form += "</x>"
	}
	if set != "" {
		set = "<set xmlns='" + nsRSM + "'>" + set + "</set>"
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	reply, err := c.iqCtx(ctx, "<iq type='set' id='"+newID()+"'"+to+"><query xmlns='"+nsMAM+"' queryid='"+qid+"'>"+form+set+"</query></iq>")
	if err != nil {
		c.t.Fatalf("%s: MAM query: %v", c.jid, err)
	}
	p := mamPage{reply: reply, fin: reply.child(nsMAM, "fin")}
	if reply.attr("type") != "result" {
		return p
	}
	// The results came before the reply; take them, in order.
	for {
		el, ok := c.await(0, func(e *element) bool {
			r := e.child(nsMAM, "result")
			return e.is("", "message") && r != nil && r.attr("queryid") == qid
		})
		if !ok {
			break
		}
		r := el.child(nsMAM, "result")
		msg := r.child(nsForward, "forwarded").child(nsClient, "message")
		p.ids = append(p.ids, r.attr("id"))
		p.msgs = append(p.msgs, msg)
		p.bodies = append(p.bodies, bodyOf(msg))
	}
	return p
}

// blast sends a stanza without a deadline. client.send's deadline goes
// through a goroutine of mellium.im/xmpp that can, after the send is
// over, still set a past write deadline for a moment; when hundreds of
// stanzas go out back to back, that moment catches the next one.
func (c *client) blast(stanza string) {
	c.t.Helper()
	if err := c.sess.Send(context.Background(), tokens(stanza)); err != nil {
		c.t.Fatalf("%s: sending %s: %v", c.jid, stanza, err)
	}
}

// online sends initial presence and waits until koi has handled it: a
// message that overtook it would be stored offline.
func (c *client) online() {
	c.t.Helper()
	c.send("<presence/>")
	c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// received waits for n chat messages from from and returns their bodies
// and the stanza ids the recipient's archive gave them.
func (c *client) received(from string, n int) (bodies, ids []string) {
	c.t.Helper()
	return c.receivedWithin(from, n, waitTimeout)
}

// receivedWithin is received with a wait of d for each message.
func (c *client) receivedWithin(from string, n int, d time.Duration) (bodies, ids []string) {
	c.t.Helper()
	bare, _, _ := strings.Cut(c.jid, "/")
	for range n {
		m, ok := c.await(d, isMessageFrom(from))
		if !ok {
			c.t.Fatalf("%s: message %d of %d from %s not received within %v", c.jid, len(ids)+1, n, from, d)
		}
		bodies = append(bodies, m.child(nsClient, "body").Text)
		id := ""
		for _, sid := range m.children(nsSID, "stanza-id") {
			if sid.attr("by") == bare {
				id = sid.attr("id")
			}
		}
		if id == "" {
			c.t.Fatalf("%s: message without our stanza-id: %s", c.jid, m)
		}
		ids = append(ids, id)
	}
	return bodies, ids
}

func TestMAM(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sql", "mongo"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var s *server
			if backend == "mongo" {
				m := mongotest.Start(t)
				s = archiveServer(t, "mongo", "", m.URI, m.Database)
			} else {
				s = archiveServer(t, "sql", "", "", "")
			}
			testMAM(t, s)
		})
	}
}

func testMAM(t *testing.T, s *server) {
	const pw = "archive-pw"
	for _, u := range []string{"alice", "bob", "carol"} {
		s.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	alice.online()
	bob.online()

	// Live messages: bob sees each with his archive's id.
	const n = 30
	for i := range n {
		alice.blast(fmt.Sprintf("<message to='bob@localhost' type='chat' id='m%d'><body>hello %d</body></message>", i, i))
	}
	bodies, ids := bob.received("alice@localhost/pc", n)

	// The newest page, then older pages, as a client scrolls back.
	page := bob.mam("<max>10</max><before/>")
	if !slices.Equal(page.ids, ids[n-10:]) || page.complete() {
		t.Fatalf("last page: %v (complete %v), want %v", page.ids, page.complete(), ids[n-10:])
	}
	var history []string
	history = append(page.bodies, history...)
	for !page.complete() {
		page = bob.mam("<max>10</max><before>" + page.rsm("first") + "</before>")
		history = append(page.bodies, history...)
	}
	if !slices.Equal(history, bodies) {
		t.Fatalf("scrolled back through %d messages, want the %d received, in order", len(history), len(bodies))
	}
	// Forward with a count, and the conversation filter.
	page = bob.mam("<max>0</max>", "with", "alice@localhost")
	if page.rsm("count") != strconv.Itoa(n) {
		t.Errorf("count %q, want %d", page.rsm("count"), n)
	}
	page = bob.mam("<max>5</max><after>"+ids[24]+"</after>", "with", "alice@localhost")
	if !slices.Equal(page.ids, ids[25:]) || !page.complete() {
		t.Errorf("after message 24: %v complete %v", page.ids, page.complete())
	}
	// Alice's archive has her side, under ids of its own.
	mine := alice.mam("<max>100</max>")
	if !slices.Equal(mine.bodies, bodies) || slices.Equal(mine.ids, ids) {
		t.Errorf("alice's archive: %d messages, same ids as bob's: %v", len(mine.ids), slices.Equal(mine.ids, ids))
	}

	// Offline: the stored messages come with their ids, and the archive
	// holds each once. Alice follows bob's presence, to know when he is
	// gone.
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	bob.expect("alice's subscription request", isPresence("subscribe", "alice@localhost"))
	bob.send("<presence to='alice@localhost' type='subscribed'/>")
	alice.expect("bob's presence", isPresence("", "bob@localhost/phone"))
	bob.close()
	alice.expect("bob going offline", isPresence("unavailable", "bob@localhost/phone"))
	alice.send("<message to='bob@localhost' type='chat'><body>while away 1</body></message>")
	alice.send("<message to='bob@localhost' type='chat'><body>while away 2</body></message>")
	// koi handles a connection's stanzas in order: once the ping is
	// answered, both messages are stored.
	alice.iq("<iq type='get' to='localhost' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	bob2 := login(t, o, "bob@localhost/laptop", pw)
	bob2.online()
	awayBodies, awayIDs := bob2.received("alice@localhost/pc", 2)
	page = bob2.mam("<max>10</max>", "after-id", ids[n-1])
	if !slices.Equal(page.ids, awayIDs) || !slices.Equal(page.bodies, awayBodies) {
		t.Fatalf("archive after the last live message: %v %v; offline delivery gave %v", page.ids, page.bodies, awayIDs)
	}
	if c := bob2.mam("<max>0</max>").rsm("count"); c != strconv.Itoa(n+2) {
		t.Errorf("bob's archive has %s messages, want %d: the offline ones exactly once", c, n+2)
	}
	// Full-text search.
	page = bob2.mam("", "{urn:xmpp:fulltext:0}fulltext", "AWAY")
	if !slices.Equal(page.bodies, []string{"while away 1", "while away 2"}) {
		t.Errorf("search: %v", page.bodies)
	}

	// Nobody reads another user's archive.
	carol := login(t, o, "carol@localhost/tab", pw)
	reply := carol.iq("<iq type='set' to='bob@localhost' id='spy'><query xmlns='" + nsMAM + "'/></iq>")
	if _, cond := reply.stanzaError(); cond != "forbidden" {
		t.Errorf("carol querying bob's archive: %s", reply)
	}
	carol.expectNone("bob's archived messages", 200*time.Millisecond, func(e *element) bool { return e.child(nsMAM, "result") != nil })

	// Preferences: bob stops archiving alice.
	reply = bob2.iq("<iq type='set' id='p'><prefs xmlns='" + nsMAM + "' default='always'><never><jid>alice@localhost</jid></never></prefs></iq>")
	if reply.attr("type") != "result" {
		t.Fatalf("setting preferences: %s", reply)
	}
	alice.send("<message to='bob@localhost' type='chat'><body>not archived by bob</body></message>")
	bob2.expect("the unarchived message", isMessageFrom("alice@localhost/pc"))
	if c := bob2.mam("<max>0</max>").rsm("count"); c != strconv.Itoa(n+2) {
		t.Errorf("bob's archive grew to %s with alice on his never list", c)
	}

	// The archive goes with the account.
	if out, err := s.koictl("user", "del", "bob@localhost"); err != nil {
		t.Fatalf("koictl user del: %v\n%s", err, out)
	}
	s.addUser(t, "bob@localhost", pw)
	bob3 := login(t, o, "bob@localhost/new", pw)
	if page := bob3.mam("<max>0</max>"); page.rsm("count") != "0" {
		t.Errorf("a new bob inherits %s archived messages", page.rsm("count"))
	}
}

// TestArchivePluginKilled SIGKILLs the sql plugin (which holds the archive)
// while alice writes to bob. Routing goes on; the writer keeps the
// messages queued, the host restarts the plugin, and the batches in flight
// are sent again: bob's archive then holds every message he received,
// exactly once.
func TestArchivePluginKilled(t *testing.T) {
	t.Parallel()
	s := archiveServer(t, "sql", "", "", "")
	const pw = "crash-pw"
	s.addUser(t, "alice@localhost", pw)
	s.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	alice.online()
	bob.online()
	// No message goes first: on a loaded machine the kill can come before
	// koi has read either user's archive preferences, and the messages
	// then wait for the restarted plugin to give them (not refused).
	const n = 600
	killed := 0
	lastPID := 0
	for i := range n {
		alice.blast(fmt.Sprintf("<message to='bob@localhost' type='chat'><body>%d</body></message>", i))
		if i == n/3 || i == 2*n/3 {
			// The second time, first wait for the restarted process.
			var pids []int
			deadline := time.Now().Add(20 * time.Second)
			for {
				pids = s.pluginPIDs(t)
				if len(pids) == 1 && pids[0] != lastPID {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("plugin processes: %v (killed %d)", pids, lastPID)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			lastPID = pids[0]
			killed++
		}
	}
	// While the plugin restarts (with back-off, on a busy machine) the
	// archive writer's queue may fill and hold deliveries back: wait for
	// each message as long as a restart can take, not the usual 5 s.
	_, ids := bob.receivedWithin("alice@localhost/pc", n, 30*time.Second)
	if killed != 2 {
		t.Fatal("the plugin was not killed")
	}
	// Queries wait for the restarted plugin and for bob's pending writes.
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		set := "<max>250</max>"
		if len(got) > 0 {
			set += "<after>" + got[len(got)-1] + "</after>"
		}
		page := bob.mamWithin(30*time.Second, set)
		if page.reply.attr("type") == "result" {
			got = append(got, page.ids...)
			if page.complete() {
				break
			}
			continue
		}
		// The plugin is still restarting: the query fails, try again.
		if time.Now().After(deadline) {
			t.Fatalf("archive queries still fail: %s", page.reply)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("bob's archive has %d messages, he received %d; they must be the same, once each", len(got), len(ids))
	}
	s.waitLog(t, "plugin restarted")
}

// TestArchiveFlushedAtShutdown stops koi right after a burst of messages:
// the writer's queue is written before the plugin stops, so after a
// restart on the same data the archive has them all.
func TestArchiveFlushedAtShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := archiveServer(t, "sql", dir, "", "")
	const pw = "flush-pw"
	s.addUser(t, "alice@localhost", pw)
	s.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	alice.online()
	bob.online()
	const n = 300
	for i := range n {
		alice.blast(fmt.Sprintf("<message to='bob@localhost' type='chat'><body>%d</body></message>", i))
	}
	_, ids := bob.received("alice@localhost/pc", n)
	s.stop(t)

	s2 := archiveServer(t, "sql", dir, "", "")
	bob2 := login(t, dialOpts{addr: s2.c2s, tls: s2.tlsConfig(t, "localhost")}, "bob@localhost/phone", pw)
	page := bob2.mam("<max>250</max><before/>")
	for !page.complete() && page.reply.attr("type") == "result" {
		prev := page
		page = bob2.mam("<max>250</max><before>" + prev.rsm("first") + "</before>")
		page.ids = append(page.ids, prev.ids...)
	}
	if !slices.Equal(page.ids, ids) {
		t.Fatalf("after the restart bob's archive has %d messages, want the %d delivered before the shutdown", len(page.ids), n)
	}
}
