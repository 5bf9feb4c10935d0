package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

const nsUpload = "urn:xmpp:http:upload:0"

// uploadServer starts koi with an upload service for localhost on its own
// HTTPS listener and returns it with the listener's address.
func uploadServer(t *testing.T, extra string) (*server, string) {
	t.Helper()
	opt := defaultOptions()
	addr := freeAddr(t)
	opt.Upload = fmt.Sprintf(`listen = %q  url_base = "https://%s"  max_file_size = 100000  quota = 250000  %s`, addr, addr, extra)
	srv := startServer(t, opt)
	srv.waitListening(t, addr)
	return srv, addr
}

// httpsClient trusts koi's certificate.
func httpsClient(t *testing.T, srv *server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tlsConfig(t, "127.0.0.1")}, Timeout: 20 * time.Second}
}

func httpDo(t *testing.T, c *http.Client, method, u string, body []byte, ctype string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// requestSlot asks the upload service for a slot and returns the answer.
func requestSlot(c *client, name string, size int, ctype string) *element {
	c.t.Helper()
	attrs := fmt.Sprintf(`filename='%s' size='%d'`, xmlEscape(name), size)
	if ctype != "" {
		attrs += fmt.Sprintf(` content-type='%s'`, xmlEscape(ctype))
	}
	return c.iq(fmt.Sprintf(`<iq type='get' to='upload.localhost' id='%s'><request xmlns='%s' %s/></iq>`, newID(), nsUpload, attrs))
}

func slotURLs(t *testing.T, r *element) (put, get string) {
	t.Helper()
	s := r.child(nsUpload, "slot")
	if r.attr("type") != "result" || s == nil {
		t.Fatalf("slot request: %s", r)
	}
	return s.child(nsUpload, "put").attr("url"), s.child(nsUpload, "get").attr("url")
}

// A user finds the service, gets a slot, PUTs a file over HTTPS and sends
// its URL to another user, who fetches it. Then the ways an upload can go
// wrong.
func TestUpload(t *testing.T) {
	t.Parallel()
	srv, addr := uploadServer(t, "")
	srv.addUser(t, "alice@localhost", "pw-alice")
	srv.addUser(t, "bob@localhost", "pw-bob")
	srv.addUser(t, "carol@example.test", "pw-carol")
	tlsCfg := srv.tlsConfig(t, "localhost")
	alice := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "alice@localhost/pc", "pw-alice")
	bob := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "bob@localhost/phone", "pw-bob")
	web := httpsClient(t, srv)

	// Discovery: the server lists the service; the service says what it
	// is and how large a file may be.
	items := alice.iq(`<iq type='get' to='localhost' id='di'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	found := false
	for _, it := range items.path("query").children("", "item") {
		found = found || it.attr("jid") == "upload.localhost"
	}
	if !found {
		t.Fatalf("disco#items of the server does not list upload.localhost: %s", items)
	}
	info := alice.iq(`<iq type='get' to='upload.localhost' id='dn'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	q := info.child("", "query")
	if id := q.child("", "identity"); id.attr("category") != "store" || id.attr("type") != "file" ||
		!strings.Contains(info.String(), nsUpload) || !strings.Contains(info.String(), "max-file-size") || !strings.Contains(info.String(), "100000") {
		t.Fatalf("disco#info of the service: %s", info)
	}
	// The certificate made at first start covers the service's domain.
	conn, err := tls.Dial("tcp", addr, srv.tlsConfig(t, "upload.localhost"))
	if err != nil {
		t.Fatalf("TLS to the upload listener as upload.localhost: %v", err)
	}
	conn.Close()

	// The whole way: slot, PUT, message, GET by another user.
	file := make([]byte, 5000)
	rand.Read(file)
	put, get := slotURLs(t, requestSlot(alice, "Report 2024 (final).pdf", len(file), "application/pdf"))
	if !strings.HasPrefix(get, "https://"+addr+"/") || !strings.HasSuffix(get, "/Report_2024__final_.pdf") {
		t.Fatalf("GET URL %s", get)
	}
	if resp, msg := httpDo(t, web, "PUT", put, file, "application/pdf"); resp.StatusCode != 201 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, msg)
	}
	alice.send(fmt.Sprintf(`<message to='bob@localhost/phone' type='chat' id='m1'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, xmlEscape(get), xmlEscape(get)))
	m := bob.expect("the link", isMessageFrom("alice@localhost/pc"))
	link := m.path("x", "url").Text
	resp, got := httpDo(t, web, "GET", link, nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(got, file) {
		t.Fatalf("bob's GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	if resp.Header.Get("Content-Type") != "application/pdf" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="Report 2024 (final).pdf"` ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET headers: %v", resp.Header)
	}

	// A used slot cannot be used again.
	if resp, msg := httpDo(t, web, "PUT", put, make([]byte, len(file)), "application/pdf"); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %d %s", resp.StatusCode, msg)
	}
	if _, again := httpDo(t, web, "GET", get, nil, ""); !bytes.Equal(again, file) {
		t.Fatal("the second PUT changed the file")
	}

	// Too large for the service: the error of XEP-0363 §4, with the limit.
	r := requestSlot(alice, "big.iso", 100001, "")
	if typ, cond := r.stanzaError(); typ != "modify" || cond != "not-acceptable" ||
		r.path("error", "file-too-large", "max-file-size").Text != "100000" {
		t.Fatalf("too large: %s", r)
	}

	// Larger or smaller than announced: refused, nothing stored.
	put2, get2 := slotURLs(t, requestSlot(alice, "notes.txt", 10, "text/plain"))
	if resp, _ := httpDo(t, web, "PUT", put2, []byte("0123456789!"), "text/plain"); resp.StatusCode != 413 {
		t.Fatalf("larger than announced: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, web, "PUT", put2, []byte("012345678"), "text/plain"); resp.StatusCode != 400 {
		t.Fatalf("smaller than announced: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, web, "PUT", put2, []byte("0123456789"), "text/html"); resp.StatusCode != 415 {
		t.Fatalf("other content type: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, web, "GET", get2, nil, ""); resp.StatusCode != 404 {
		t.Fatalf("a refused upload is served: %d", resp.StatusCode)
	}

	// Tampered URLs: a larger size, another id, another name.
	u, _ := url.Parse(put2)
	qv := u.Query()
	qv.Set("s", "20")
	u.RawQuery = qv.Encode()
	if resp, _ := httpDo(t, web, "PUT", u.String(), make([]byte, 20), "text/plain"); resp.StatusCode != 403 {
		t.Fatalf("tampered size: %d", resp.StatusCode)
	}
	parts := strings.Split(strings.SplitN(put2, "?", 2)[0], "/")
	otherID := strings.Replace(put2, parts[len(parts)-2], strings.Repeat("a", len(parts[len(parts)-2])), 1)
	if resp, _ := httpDo(t, web, "PUT", otherID, []byte("0123456789"), "text/plain"); resp.StatusCode != 403 {
		t.Fatalf("other id: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, web, "PUT", strings.Replace(put2, "/notes.txt?", "/notes.html?", 1), []byte("0123456789"), "text/plain"); resp.StatusCode != 403 {
		t.Fatalf("other name: %d", resp.StatusCode)
	}
	// The genuine URL still works after all that.
	if resp, _ := httpDo(t, web, "PUT", put2, []byte("0123456789"), "text/plain"); resp.StatusCode != 201 {
		t.Fatalf("PUT after refusals: %d", resp.StatusCode)
	}

	// Path tricks: names that are paths are refused at the request, and
	// no URL reaches a file outside its slot.
	for _, name := range []string{"../../koi.hcl", "..", `..\..\koi.hcl`, "a/b.txt"} {
		if _, cond := requestSlot(alice, name, 10, "").stanzaError(); cond != "bad-request" {
			t.Errorf("file name %q: %s", name, cond)
		}
	}
	base := "https://" + addr
	id := parts[len(parts)-2]
	for _, p := range []string{"/../koi.hcl", "/%2e%2e/koi.hcl", "/" + id + "/..%2F..%2Fkoi.hcl", "/" + id + "/%2e%2e",
		"/files/" + id, "/" + id, "/" + id + "/", "/upload.key/x", "/" + id + "/notes.txt.meta", "/" + id + "/.meta"} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.URL.Opaque = p // sent as written, not cleaned by the client
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || bytes.Contains(b, []byte("listen")) {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, b)
		}
	}

	// Users of another host get no slots here.
	carol := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, secondHost)}, "carol@example.test/x", "pw-carol")
	if typ, cond := requestSlot(carol, "c.txt", 10, "").stanzaError(); typ != "cancel" || cond != "not-allowed" {
		t.Fatalf("user of another host: %s %s", typ, cond)
	}

	// The quota (250000) counts the files and the open slots.
	slotURLs(t, requestSlot(alice, "one.bin", 100000, ""))
	slotURLs(t, requestSlot(alice, "two.bin", 100000, ""))
	r = requestSlot(alice, "three.bin", 100000, "")
	if typ, cond := r.stanzaError(); typ != "wait" || cond != "resource-constraint" || r.path("error", "retry").attr("stamp") == "" {
		t.Fatalf("over quota: %s", r)
	}
	// Bob's quota is his own.
	slotURLs(t, requestSlot(bob, "bob.bin", 100000, ""))

	// On disk: the files under their ids, nothing named by a user.
	store := filepath.Join(srv.dir, "data", "upload", "upload.localhost")
	var names []string
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, store))
		}
		return nil
	})
	for _, n := range names {
		if strings.Contains(n, "Report") || strings.Contains(n, "notes") || !(strings.HasPrefix(n, "/files/") || strings.HasPrefix(n, "/owners/")) {
			t.Errorf("unexpected file in the store: %s", n)
		}
	}
	if len(names) < 4 {
		t.Errorf("store holds %v", names)
	}
}

// TestUploadSlixmpp: Debian's slixmpp, a client people run, finds the
// service and uploads a file with its XEP-0363 plugin (aiohttp for the
// PUT), then sends the link to a user of the Go library, who fetches it.
func TestUploadSlixmpp(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3"
	// The plugin PUTs with aiohttp, which python3-slixmpp only suggests.
	testsvc.Require(t, testsvc.AptInstall(t.Context(), "python3-slixmpp", "python3-aiohttp"))
	if out, err := exec.Command(python, "-c", "import slixmpp.plugins.xep_0363, aiohttp").CombinedOutput(); err != nil {
		t.Fatalf("python3-slixmpp's xep_0363 plugin and aiohttp are not importable by %s: %v %s", python, err, out)
	}
	srv, _ := uploadServer(t, "")
	srv.addUser(t, "alice@localhost", "pw-alice")
	srv.addUser(t, "bob@localhost", "pw-bob")
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/pc", "pw-alice")

	file := filepath.Join(t.TempDir(), "holiday photo.png")
	content := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte("pixels"), 3000)...)
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.c2s)
	portN, _ := strconv.Atoi(port)
	ca := filepath.Join(srv.dir, "tls", "cert.pem")
	args, _ := json.Marshal(map[string]any{
		"jid": "bob@localhost/slix", "password": "pw-bob", "host": host, "port": portN,
		"ca_file": ca, "file": file, "to": "alice@localhost/pc",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "slixmpp_upload.py"), string(args))
	// aiohttp verifies the upload listener's certificate with OpenSSL's
	// default store: koi's own certificate here.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var getURL string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			getURL = u
		}
	}
	if err != nil || getURL == "" {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, out, stderr.String())
	}
	m := alice.expect("slixmpp's link", isMessageFrom("bob@localhost/slix"))
	if body := m.child("", "body").Text; body != getURL {
		t.Fatalf("message body %q, want %q", body, getURL)
	}
	resp, got := httpDo(t, httpsClient(t, srv), "GET", getURL, nil, "")
	if resp.StatusCode != 200 || !bytes.Equal(got, content) || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("Content-Disposition") != `inline; filename="holiday photo.png"` {
		t.Fatalf("GET %s: %d, %d bytes, %v", getURL, resp.StatusCode, len(got), resp.Header)
	}
}

// TestUploadS3: the service keeps files in an S3 bucket (versitygw, or
// KOI_TEST_S3_ENDPOINT), its secret key given through the environment.
func TestUploadS3(t *testing.T) {
	t.Parallel()
	b := testsvc.S3(t)
	opt := defaultOptions()
	addr := freeAddr(t)
	opt.Upload = fmt.Sprintf(`listen = %q  tls = false  url_base = "http://%s/files"  max_file_size = 100000
    store { type = "s3"  endpoint = %q  bucket = %q  access_key = %q  prefix = "koi" }`, addr, addr, b.Endpoint, b.Bucket, b.AccessKey)
	dir := t.TempDir()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, []string{"KOI_HOST__LOCALHOST__UPLOAD__STORE__SECRET_KEY=" + b.SecretKey})
	srv.waitListening(t, addr)
	srv.addUser(t, "alice@localhost", "pw-alice")
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/pc", "pw-alice")

	file := bytes.Repeat([]byte("s3 "), 20000)
	put, get := slotURLs(t, requestSlot(alice, "notes.txt", len(file), "text/plain"))
	if !strings.HasPrefix(get, "http://"+addr+"/files/") {
		t.Fatalf("GET URL %s", get)
	}
	web := &http.Client{Timeout: 20 * time.Second}
	if resp, msg := httpDo(t, web, "PUT", put, file, "text/plain"); resp.StatusCode != 201 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, msg)
	}
	if resp, got := httpDo(t, web, "GET", get, nil, ""); resp.StatusCode != 200 || !bytes.Equal(got, file) || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("GET: %d, %d bytes, %v", resp.StatusCode, len(got), resp.Header)
	}
	if resp, _ := httpDo(t, web, "PUT", put, file, "text/plain"); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, web, "PUT", put, file[:100], "text/plain"); resp.StatusCode != 400 {
		t.Fatalf("short PUT: %d", resp.StatusCode)
	}
}
