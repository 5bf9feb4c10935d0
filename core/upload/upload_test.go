package upload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// routed collects what the service sends.
type routed struct {
	mu  sync.Mutex
	got []*xmlstream.Element
	ch  chan struct{}
}

func newRouted() *routed { return &routed{ch: make(chan struct{}, 100)} }

func (r *routed) Route(_ context.Context, el *xmlstream.Element) {
	r.mu.Lock()
	r.got = append(r.got, el.Copy())
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *routed) next(t *testing.T) *xmlstream.Element {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer from the service")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	el := r.got[0]
	r.got = r.got[1:]
	return el
}

type env struct {
	svc    *Service
	out    *routed
	http   *httptest.Server
	offset atomic.Int64 // added to the clock
	store  *DirStore
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	st, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{out: newRouted(), store: st}
	cfg := Config{
		Domain: "upload.example.com", Host: "example.com", URLBase: "http://placeholder",
		MaxFileSize: 1 << 20, Quota: 0, Expire: 0, Key: bytes.Repeat([]byte{7}, 32), Store: st,
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
	}
	if mod != nil {
		mod(&cfg)
	}
	// The URL base is known once the HTTP server listens.
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	cfg.URLBase = ts.URL + "/upload/"
	svc, err := New(cfg, e.out)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = svc
	e.svc, e.http = svc, ts
	t.Cleanup(func() { ts.Close(); svc.Close() })
	return e
}

func (e *env) advance(d time.Duration) { e.offset.Add(int64(d)) }

func (e *env) send(t *testing.T, x string) *xmlstream.Element {
	t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Deliver(context.Background(), el)
	return e.out.next(t)
}

// slot requests a slot for alice and returns its PUT and GET URLs.
func (e *env) slot(t *testing.T, name string, size int, ctype string) (put, get string) {
	t.Helper()
	r := e.request(t, "alice@example.com/pc", name, size, ctype)
	s := r.Child(NS, "slot")
	if r.Attr("type") != "result" || s == nil {
		t.Fatalf("slot request: %v", r)
	}
	return s.Child(NS, "put").Attr("url"), s.Child(NS, "get").Attr("url")
}

func (e *env) request(t *testing.T, from, name string, size int, ctype string) *xmlstream.Element {
	t.Helper()
	req := xmlstream.NewElement(NS, "request").SetAttr("filename", name).SetAttr("size", fmt.Sprint(size))
	if ctype != "" {
		req.SetAttr("content-type", ctype)
	}
	iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get").SetAttr("id", "r1").
		SetAttr("from", from).SetAttr("to", "upload.example.com").AppendChild(req)
	e.svc.Deliver(context.Background(), iq)
	r := e.out.next(t)
	if r.Attr("id") != "r1" || r.Attr("to") != from || r.Attr("from") != "upload.example.com" {
		t.Fatalf("answer addressed wrong: %v", r)
	}
	return r
}

func do(t *testing.T, method, u string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// uploadError checks an error answer and returns its condition.
func uploadError(t *testing.T, r *xmlstream.Element) (*stanza.Error, *xmlstream.Element) {
	t.Helper()
	if r.Attr("type") != "error" {
		t.Fatalf("want an error, got %v", r)
	}
	return stanza.ErrorFrom(r), r.Child(xmlstream.NSClient, "error")
}

func TestUploadAndDownload(t *testing.T) {
	e := newEnv(t, nil)
	body := bytes.Repeat([]byte("koi "), 1000)
	put, get := e.slot(t, "my notes.txt", len(body), "text/plain; charset=UTF-8")
	if !strings.HasSuffix(get, "/my_notes.txt") || !strings.HasPrefix(put, get+"?") || strings.Contains(get, "//upload//") {
		t.Fatalf("urls: put %s get %s", put, get)
	}

	// Before the upload there is nothing to fetch.
	if resp, _ := do(t, "GET", get, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET before PUT: %d", resp.StatusCode)
	}
	resp, msg := do(t, "PUT", put, body, map[string]string{"Content-Type": "text/plain; charset=utf-8"})
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, msg)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("no CORS header on PUT")
	}

	resp, got := do(t, "GET", get, nil, nil)
	h := resp.Header
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	for k, want := range map[string]string{
		"Content-Type":                "text/plain; charset=utf-8",
		"Content-Disposition":         `inline; filename="my notes.txt"`,
		"X-Content-Type-Options":      "nosniff",
		"Access-Control-Allow-Origin": "*",
		"Content-Length":              fmt.Sprint(len(body)),
		"Accept-Ranges":               "bytes",
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	if resp, part := do(t, "GET", get, nil, map[string]string{"Range": "bytes=4-11"}); resp.StatusCode != 206 || string(part) != "koi koi " {
		t.Fatalf("range: %d %q", resp.StatusCode, part)
	}
	if resp, b := do(t, "HEAD", get, nil, nil); resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	if resp, _ := do(t, "OPTIONS", put, nil, map[string]string{"Origin": "https://web.example", "Access-Control-Request-Method": "PUT"}); resp.StatusCode != 204 ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	if resp, _ := do(t, "OPTIONS", put, nil, map[string]string{"Origin": "https://web.example", "Access-Control-Request-Method": "PUT",
		"Access-Control-Request-Headers": "content-type,x-client"}); resp.Header.Get("Access-Control-Allow-Headers") != "content-type,x-client" {
		t.Fatalf("preflight for more headers: %v", resp.Header)
	}

	// The slot is spent.
	if resp, _ := do(t, "PUT", put, []byte(strings.Repeat("x", len(body))), map[string]string{"Content-Type": "text/plain; charset=utf-8"}); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %d", resp.StatusCode)
	}
	if _, again := do(t, "GET", get, nil, nil); !bytes.Equal(again, body) {
		t.Fatal("the second PUT changed the file")
	}

	// The file is only at its own URL.
	u, _ := url.Parse(get)
	base := strings.TrimSuffix(get, "/my_notes.txt")
	for _, other := range []string{base + "/other.txt", base + "/my_notes.TXT", u.Scheme + "://" + u.Host + "/upload/" + newID() + "/my_notes.txt",
		base + "/..%2Fmy_notes.txt", base + "/../my_notes.txt", u.Scheme + "://" + u.Host + "/upload/files/" + strings.TrimPrefix(base, u.Scheme+"://"+u.Host+"/upload/")} {
		if resp, _ := do(t, "GET", other, nil, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d", other, resp.StatusCode)
		}
	}
	if resp, _ := do(t, "DELETE", get, nil, nil); resp.StatusCode != 405 {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
}

func TestDispositionAndTypes(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct{ name, ctype, sent, disp string }{
		{"page.html", "text/html", "text/html", `attachment; filename=page.html`},
		{"logo.svg", "image/svg+xml", "image/svg+xml", `attachment; filename=logo.svg`},
		{"cat.JPG", "IMAGE/JPEG", "image/jpeg", `inline; filename=cat.JPG`},
		{"données.bin", "", "", `attachment; filename*=utf-8''donn%C3%A9es.bin`},
		{"clip.mp4", "", "video/mp4", `inline; filename=clip.mp4`},
	} {
		put, get := e.slot(t, c.name, 3, c.ctype)
		hdr := map[string]string{}
		if c.sent != "" {
			hdr["Content-Type"] = c.sent
		}
		if resp, msg := do(t, "PUT", put, []byte("abc"), hdr); resp.StatusCode != 201 {
			t.Fatalf("%s: PUT %d %s", c.name, resp.StatusCode, msg)
		}
		resp, _ := do(t, "GET", get, nil, nil)
		want := c.sent
		if want == "" {
			want = "application/octet-stream"
		}
		if resp.Header.Get("Content-Type") != want || resp.Header.Get("Content-Disposition") != c.disp ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: type %q disposition %q csp %q", c.name, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), resp.Header.Get("Content-Security-Policy"))
		}
	}
}

func TestPutChecks(t *testing.T) {
	e := newEnv(t, nil)
	body := []byte("0123456789")
	put, get := e.slot(t, "a.bin", len(body), "application/octet-stream")
	typ := map[string]string{"Content-Type": "application/octet-stream"}

	tamper := func(k, v string) string {
		u, _ := url.Parse(put)
		q := u.Query()
		q.Set(k, v)
		u.RawQuery = q.Encode()
		return u.String()
	}
	for name, c := range map[string]struct {
		url  string
		body []byte
		hdr  map[string]string
		code int
	}{
		"bigger size in URL":  {tamper(qSize, "11"), append(body, '!'), typ, 403},
		"other type in URL":   {tamper(qType, "text/html"), body, map[string]string{"Content-Type": "text/html"}, 403},
		"no signature":        {strings.Split(put, "?")[0], body, typ, 403},
		"other name":          {strings.Replace(put, "/a.bin?", "/b.bin?", 1), body, typ, 403},
		"larger than slot":    {put, append(body, '!'), typ, 413},
		"smaller than slot":   {put, body[:9], typ, 400},
		"other content type":  {put, body, map[string]string{"Content-Type": "text/html"}, 415},
		"no content type":     {put, body, nil, 415},
		"broken content type": {put, body, map[string]string{"Content-Type": "a b c"}, 415},
	} {
		if resp, msg := do(t, "PUT", c.url, c.body, c.hdr); resp.StatusCode != c.code {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, msg, c.code)
		}
	}
	// Chunked, without a length.
	req, _ := http.NewRequest("PUT", put, io.MultiReader(bytes.NewReader(body)))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 411 {
		t.Errorf("chunked: %v %v", resp, err)
	}
	// Nothing of the above was stored.
	if resp, _ := do(t, "GET", get, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a refused upload is served: %d", resp.StatusCode)
	}

	// A body that stops early stores nothing, and the slot still works.
	u, _ := url.Parse(put)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n01234", u.RequestURI(), u.Host)
	conn.Close()
	time.Sleep(100 * time.Millisecond)
	if resp, _ := do(t, "GET", get, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a broken upload is served: %d", resp.StatusCode)
	}
	if resp, msg := do(t, "PUT", put, body, typ); resp.StatusCode != 201 {
		t.Fatalf("PUT after a broken one: %d %s", resp.StatusCode, msg)
	}

	// An expired slot is refused.
	put2, _ := e.slot(t, "late.bin", 1, "")
	e.advance(DefaultSlotLifetime + time.Second)
	if resp, msg := do(t, "PUT", put2, []byte("x"), nil); resp.StatusCode != 403 || !strings.Contains(string(msg), "expired") {
		t.Fatalf("expired slot: %d %s", resp.StatusCode, msg)
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxFileSize = 1000 })

	r := e.request(t, "alice@example.com/pc", "big.iso", 1001, "")
	serr, errEl := uploadError(t, r)
	if serr.Condition != "not-acceptable" || serr.Type != "modify" ||
		errEl.Child(NS, "file-too-large") == nil || errEl.Child(NS, "file-too-large").Child(NS, "max-file-size").Text() != "1000" {
		t.Fatalf("too large: %v", r)
	}
	if req := r.Child(NS, "request"); req == nil || req.Attr("filename") != "big.iso" {
		t.Fatalf("the error does not repeat the request: %v", r)
	}
	for _, c := range []struct {
		from, name, size, ctype, cond string
	}{
		{"mallory@evil.example/x", "a.txt", "1", "", "not-allowed"},
		{"example.com", "a.txt", "1", "", "not-allowed"},
		{"alice@example.com/pc", "../../etc/passwd", "1", "", "bad-request"},
		{"alice@example.com/pc", "..", "1", "", "bad-request"},
		{"alice@example.com/pc", "", "1", "", "bad-request"},
		{"alice@example.com/pc", strings.Repeat("n", 300), "1", "", "bad-request"},
		{"alice@example.com/pc", "a.txt", "0", "", "bad-request"},
		{"alice@example.com/pc", "a.txt", "-5", "", "bad-request"},
		{"alice@example.com/pc", "a.txt", "1e3", "", "bad-request"},
		{"alice@example.com/pc", "a.txt", "", "", "bad-request"},
		{"alice@example.com/pc", "a.txt", "1", "not a type", "bad-request"},
	} {
		req := xmlstream.NewElement(NS, "request").SetAttr("filename", c.name).SetAttr("size", c.size)
		if c.ctype != "" {
			req.SetAttr("content-type", c.ctype)
		}
		iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get").SetAttr("id", "x").
			SetAttr("from", c.from).SetAttr("to", "upload.example.com").AppendChild(req)
		e.svc.Deliver(context.Background(), iq)
		r := e.out.next(t)
		if serr, _ := uploadError(t, r); serr.Condition != c.cond {
			t.Errorf("%+v: %s, want %s", c, serr.Condition, c.cond)
		}
	}
	// A NUL cannot be sent in XML; the check is still there.
	if checkFilename("a\x00b") == "" {
		t.Fatal("NUL accepted")
	}

	info := e.send(t, `<iq type='get' id='d' from='bob@other.example/x' to='upload.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	q := info.Child(NSDiscoInfo, "query")
	if q == nil || q.Child(NSDiscoInfo, "identity").Attr("category") != "store" || q.Child(NSDiscoInfo, "identity").Attr("type") != "file" {
		t.Fatalf("disco#info: %v", info)
	}
	var features []string
	for _, f := range q.Elements() {
		if f.Local == "feature" {
			features = append(features, f.Attr("var"))
		}
	}
	if !strings.Contains(strings.Join(features, " "), NS) {
		t.Fatalf("features: %v", features)
	}
	x := q.Child(NSData, "x")
	if x == nil || !strings.Contains(x.String(), "<value>1000</value>") || !strings.Contains(x.String(), "max-file-size") || !strings.Contains(x.String(), NS) {
		t.Fatalf("form: %v", x)
	}
	if r := e.send(t, `<iq type='get' id='n' from='a@example.com/x' to='upload.example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>`); stanza.ErrorFrom(r).Condition != "item-not-found" {
		t.Fatalf("node: %v", r)
	}
	if r := e.send(t, `<iq type='get' id='i' from='a@example.com/x' to='upload.example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`); r.Attr("type") != "result" {
		t.Fatalf("disco#items: %v", r)
	}
	if r := e.send(t, `<iq type='get' id='p' from='a@example.com/x' to='upload.example.com'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Attr("type") != "result" {
		t.Fatalf("ping: %v", r)
	}
	if r := e.send(t, `<iq type='set' id='v' from='a@example.com/x' to='upload.example.com'><query xmlns='jabber:iq:version'/></iq>`); stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatalf("unknown: %v", r)
	}
	if r := e.send(t, `<iq type='get' id='u' from='a@example.com/x' to='someone@upload.example.com'><request xmlns='urn:xmpp:http:upload:0' filename='a' size='1'/></iq>`); stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatalf("to a user of the service: %v", r)
	}
	if r := e.send(t, `<message id='m' from='a@example.com/x' to='upload.example.com'><body>hi</body></message>`); r.Local != "message" || stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatalf("message: %v", r)
	}
}

func TestQuotaAndExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Quota = 100; c.MaxFileSize = 80; c.Expire = 48 * time.Hour })
	put, get := e.slot(t, "a.bin", 60, "")
	if resp, _ := do(t, "PUT", put, make([]byte, 60), nil); resp.StatusCode != 201 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	// 60 used: a slot for 50 more would pass the quota.
	r := e.request(t, "alice@example.com/phone", "b.bin", 50, "")
	serr, errEl := uploadError(t, r)
	if serr.Condition != "resource-constraint" || serr.Type != "wait" || errEl.Child(NS, "retry") == nil {
		t.Fatalf("over quota: %v", r)
	}
	stamp, err := time.Parse(time.RFC3339, errEl.Child(NS, "retry").Attr("stamp"))
	if err != nil || stamp.Before(time.Now().Add(47*time.Hour)) {
		t.Fatalf("retry stamp: %v %v", stamp, err)
	}
	// Another user has a quota of their own; the open slot counts.
	_ = e.request(t, "bob@example.com/pc", "c.bin", 70, "")
	r = e.request(t, "bob@example.com/pc", "d.bin", 31, "")
	if serr, _ := uploadError(t, r); serr.Condition != "resource-constraint" {
		t.Fatalf("bob's open slot does not count: %v", r)
	}
	// Within the quota, still fine.
	e.slot(t, "e.bin", 40, "")

	// Bob never uploads: once his slot can no longer be used, it stops
	// counting.
	e.advance(e.svc.pendingLifetime(70) + time.Second)
	files, markers, err := e.svc.Cleanup(context.Background())
	if err != nil || files != 0 || markers != 2 { // bob's and alice's e.bin
		t.Fatalf("cleanup: %d files, %d markers, %v", files, markers, err)
	}
	if r := e.request(t, "bob@example.com/pc", "d.bin", 31, ""); r.Attr("type") != "result" {
		t.Fatalf("after cleanup: %v", r)
	}
	if resp, _ := do(t, "GET", get, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("a live file is gone: %d", resp.StatusCode)
	}

	// Past its expiry the file is not served, then deleted, and its space
	// is free.
	e.advance(48 * time.Hour)
	if resp, _ := do(t, "GET", get, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("expired file served: %d", resp.StatusCode)
	}
	files, _, err = e.svc.Cleanup(context.Background())
	if err != nil || files != 1 {
		t.Fatalf("cleanup after expiry: %d files, %v", files, err)
	}
	if r := e.request(t, "alice@example.com/pc", "f.bin", 80, ""); r.Attr("type") != "result" {
		t.Fatalf("quota not freed: %v", r)
	}
}

func TestConfigChecks(t *testing.T) {
	st, _ := NewDirStore(t.TempDir())
	good := Config{Domain: "upload.x", Host: "x", URLBase: "https://upload.x", MaxFileSize: 1, Key: make([]byte, 32), Store: st}
	if _, err := New(good, newRouted()); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"short key": func(c *Config) { c.Key = make([]byte, 16) },
		"no store":  func(c *Config) { c.Store = nil },
		"no domain": func(c *Config) { c.Domain = "" },
		"bad url":   func(c *Config) { c.URLBase = "ftp://x" },
		"no limit":  func(c *Config) { c.MaxFileSize = 0 },
	} {
		c := good
		mod(&c)
		if _, err := New(c, newRouted()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
