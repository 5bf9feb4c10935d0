package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// fakeKoi is an in-memory koi behind the API's interfaces: enough to
// check the API's own logic (parsing, errors, status codes, the contract);
// e2e/admin_test.go runs it against the real server.
type fakeKoi struct {
	mu       sync.Mutex
	users    map[string]string // bare JID → password
	sessions []Session
	rosters  map[string][]sdk.RosterItem
	sent     []*xmlstream.Element
	restarts []string
	down     bool // every backend call fails with ErrUnavailable
	reloads  int
}

func (f *fakeKoi) Hosts() []string { return []string{"example.org", "other.org"} }
func (f *fakeKoi) ListUsers(_ context.Context, host string) ([]string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, "", sdk.ErrUnavailable
	}
	var out []string
	for u := range f.users {
		if strings.HasSuffix(u, "@"+host) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, "", nil
}
func (f *fakeKoi) UserExists(_ context.Context, a jid.JID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.users[a.String()]
	return ok, nil
}
func (f *fakeKoi) CreateUser(_ context.Context, a jid.JID, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[a.String()]; ok {
		return sdk.ErrExists
	}
	f.users[a.String()] = pw
	return nil
}
func (f *fakeKoi) SetPassword(_ context.Context, a jid.JID, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[a.String()]; !ok {
		return sdk.ErrNotFound
	}
	f.users[a.String()] = pw
	return nil
}
func (f *fakeKoi) CheckPassword(_ context.Context, a jid.JID, pw string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.users[a.String()]
	return ok && p == pw, nil
}
func (f *fakeKoi) DeleteUser(_ context.Context, a jid.JID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[a.String()]; !ok {
		return sdk.ErrNotFound
	}
	delete(f.users, a.String())
	return nil
}
func (f *fakeKoi) Sessions(host string) []Session {
	var out []Session
	for _, s := range f.sessions {
		if host == "" || strings.Contains(s.JID, "@"+host+"/") {
			out = append(out, s)
		}
	}
	return out
}
func (f *fakeKoi) Kick(full jid.JID, text string) bool {
	for i, s := range f.sessions {
		if s.JID == full.String() {
			f.sessions = slices.Delete(f.sessions, i, i+1)
			return true
		}
	}
	return false
}
func (f *fakeKoi) RosterItems(_ context.Context, owner jid.JID) ([]sdk.RosterItem, error) {
	return f.rosters[owner.String()], nil
}
func (f *fakeKoi) SetRosterItem(_ context.Context, owner, contact jid.JID, name string, groups []string) error {
	f.rosters[owner.String()] = append(f.rosters[owner.String()], sdk.RosterItem{JID: contact.String(), Name: name, Groups: groups, Subscription: sdk.SubNone})
	return nil
}
func (f *fakeKoi) RemoveRosterItem(_ context.Context, owner, contact jid.JID) error {
	items := f.rosters[owner.String()]
	for i, it := range items {
		if it.JID == contact.String() {
			f.rosters[owner.String()] = slices.Delete(items, i, i+1)
			return nil
		}
	}
	return stanza.ErrItemNotFound
}
func (f *fakeKoi) SendMessage(_ context.Context, el *xmlstream.Element, to jid.JID) bool {
	f.sent = append(f.sent, el)
	return true
}
func (f *fakeKoi) Broadcast(host string, el *xmlstream.Element) int {
	f.sent = append(f.sent, el)
	return len(f.Sessions(host))
}
func (f *fakeKoi) Counters() Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Counters{
		ConnectionsOpen: int64(len(f.sessions)), ConnectionsTotal: 5,
		Logins:     map[string]uint64{"success": 4, "failure": 1, "refused": 0},
		StanzasIn:  map[string]uint64{"message": uint64(len(f.sent)), "presence": 3, "iq": 7, "other": 0},
		StanzasOut: map[string]uint64{"message": 2, "presence": 6, "iq": 7, "other": 1},
	}
}
func (f *fakeKoi) Plugins() []Plugin { return []Plugin{{Name: "store", Healthy: true, PID: 42}} }
func (f *fakeKoi) RestartPlugin(name string) bool {
	if name != "store" {
		return false
	}
	f.restarts = append(f.restarts, name)
	return true
}

const token = "test-token-0123456789"

// validator checks each request and answer against openapi.yaml and
// notes which operations were exercised.
type validator struct {
	t      *testing.T
	router routers.Router
	next   http.Handler
	seen   map[string]bool
}

func (v *validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		v.next.ServeHTTP(w, r) // not in the document: the API must say 404
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(r.Context(), in)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)
	// A request the document rejects must be rejected by the API too.
	if reqErr != nil && rec.Code < 400 {
		v.t.Errorf("%s %s: the API accepted (%d) a request openapi.yaml rejects: %v", r.Method, r.URL, rec.Code, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		v.t.Errorf("answer %d to %s %s does not match openapi.yaml: %v\n%s", rec.Code, r.Method, r.URL, err, rec.Body.String())
	}
	v.seen[route.Method+" "+route.Path] = true
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func TestAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: "/"}}
	rt, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeKoi{
		users:    map[string]string{"alice@example.org": "pw-a"},
		sessions: []Session{{JID: "alice@example.org/phone", Available: true, Show: "away"}, {JID: "bob@other.org/pc"}},
		rosters:  map[string][]sdk.RosterItem{},
	}
	var logs bytes.Buffer
	v := &validator{t: t, router: rt, seen: map[string]bool{}, next: Handler(Config{
		Token: token, Version: "test", Started: time.Now().Add(-time.Minute), Log: hclog.New(&hclog.LoggerOptions{Output: &logs}),
		Users: f, Sessions: f, Rosters: f, Messages: f, Plugins: f, Counters: f,
		Check: func(context.Context) ([]string, []string, error) {
			return []string{`host "x".auth: no plugin block named "y"`}, nil, nil
		},
		Reload: func(context.Context) ([]string, []string, error) {
			f.reloads++
			if f.reloads > 1 {
				return nil, nil, errors.New(`plugins: plugin "store": configure: bogus_key: unknown key`)
			}
			return []string{"log.level info → debug", `plugin "store" restarted with its new settings`, `host "example.org".roster store → other`},
				[]string{"listen (addresses, types, TLS, paths)"}, nil
		},
	})}
	ts := httptest.NewServer(v)
	defer ts.Close()

	call := func(method, path, body, tok string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		if len(b) > 0 {
			if err := json.Unmarshal(b, &out); err != nil {
				t.Errorf("%s %s: answer is not JSON: %q", method, path, b)
			}
		}
		return resp.StatusCode, out
	}
	for _, tc := range []struct {
		name, method, path, body, token string
		status                          int
		check                           func(map[string]any) bool
	}{
		{"no token", "GET", "/api/v1/stats", "", "", 401, func(m map[string]any) bool { return m["code"] == "unauthorized" }},
		{"wrong token", "GET", "/api/v1/stats", "", "nope", 401, func(m map[string]any) bool {
			return m["code"] == "unauthorized" && strings.HasPrefix(m["error"].(string), "wrong token")
		}},
		{"stats", "GET", "/api/v1/stats", "", token, 200, func(m map[string]any) bool {
			return m["sessions"] == 2.0 && m["online_users"] == 2.0 && m["uptime_seconds"].(float64) >= 59
		}},
		{"counters", "GET", "/api/v1/counters", "", token, 200, func(m map[string]any) bool {
			return m["uptime_ms"].(float64) >= 59000 && m["connections_open"] == 2.0 &&
				m["logins"].(map[string]any)["success"] == 4.0 && m["stanzas_out"].(map[string]any)["presence"] == 6.0
		}},
		{"counters, no token", "GET", "/api/v1/counters", "", "", 401, nil},
		{"list users, two hosts, none named", "GET", "/api/v1/users", "", token, 400, nil},
		{"list users", "GET", "/api/v1/users?host=example.org", "", token, 200, func(m map[string]any) bool {
			return len(m["users"].([]any)) == 1
		}},
		{"list users, unknown host", "GET", "/api/v1/users?host=nowhere.org", "", token, 404, nil},
		{"create", "POST", "/api/v1/users", `{"jid":"bob@example.org","password":"pw-b"}`, token, 201, func(m map[string]any) bool { return m["jid"] == "bob@example.org" }},
		{"create twice", "POST", "/api/v1/users", `{"jid":"bob@example.org","password":"pw-b"}`, token, 409, nil},
		{"create, unknown host", "POST", "/api/v1/users", `{"jid":"bob@nowhere.org","password":"x"}`, token, 404, nil},
		{"create, not a JID", "POST", "/api/v1/users", `{"jid":"@@","password":"x"}`, token, 400, nil},
		{"create, empty password", "POST", "/api/v1/users", `{"jid":"carol@example.org","password":""}`, token, 400, nil},
		{"create, malformed JSON", "POST", "/api/v1/users", `{"jid":`, token, 400, func(m map[string]any) bool { return m["code"] == "malformed" }},
		{"create, unknown field", "POST", "/api/v1/users", `{"jid":"carol@example.org","password":"x","admin":true}`, token, 400, nil},
		{"create, huge body", "POST", "/api/v1/users", `{"jid":"carol@example.org","password":"` + strings.Repeat("x", maxBody) + `"}`, token, 413, nil},
		{"get", "GET", "/api/v1/users/alice@example.org", "", token, 200, func(m map[string]any) bool { return len(m["sessions"].([]any)) == 1 }},
		{"get, absent", "GET", "/api/v1/users/nobody@example.org", "", token, 404, nil},
		{"set password", "PUT", "/api/v1/users/bob@example.org/password", `{"password":"pw-b2"}`, token, 204, nil},
		{"set password, absent", "PUT", "/api/v1/users/nobody@example.org/password", `{"password":"x"}`, token, 404, nil},
		{"check password", "POST", "/api/v1/users/bob@example.org/check-password", `{"password":"pw-b2"}`, token, 200, func(m map[string]any) bool { return m["valid"] == true }},
		{"check wrong password", "POST", "/api/v1/users/bob@example.org/check-password", `{"password":"pw-b"}`, token, 200, func(m map[string]any) bool { return m["valid"] == false }},
		{"roster add", "PUT", "/api/v1/users/alice@example.org/roster/bob@example.org", `{"name":"Bob","groups":["Friends"]}`, token, 204, nil},
		{"roster add, full JID", "PUT", "/api/v1/users/alice@example.org/roster/bob@example.org%2Fpc", `{}`, token, 400, nil},
		{"roster get", "GET", "/api/v1/users/alice@example.org/roster", "", token, 200, func(m map[string]any) bool {
			items := m["items"].([]any)
			return len(items) == 1 && items[0].(map[string]any)["name"] == "Bob"
		}},
		{"roster remove", "DELETE", "/api/v1/users/alice@example.org/roster/bob@example.org", "", token, 204, nil},
		{"roster remove, absent", "DELETE", "/api/v1/users/alice@example.org/roster/bob@example.org", "", token, 404, nil},
		{"sessions", "GET", "/api/v1/sessions?host=example.org", "", token, 200, func(m map[string]any) bool { return len(m["sessions"].([]any)) == 1 }},
		{"kick, bare JID", "DELETE", "/api/v1/sessions?jid=alice@example.org", "", token, 400, nil},
		{"kick", "DELETE", "/api/v1/sessions?jid=alice@example.org/phone", "", token, 204, nil},
		{"kick, gone", "DELETE", "/api/v1/sessions?jid=alice@example.org/phone", "", token, 404, nil},
		{"message", "POST", "/api/v1/messages", `{"to":"alice@example.org","body":"maintenance at 6"}`, token, 202, nil},
		{"message, bad type", "POST", "/api/v1/messages", `{"to":"alice@example.org","type":"groupchat","body":"x"}`, token, 400, nil},
		{"message, no body", "POST", "/api/v1/messages", `{"to":"alice@example.org"}`, token, 400, nil},
		{"message, unknown host", "POST", "/api/v1/messages", `{"to":"alice@nowhere.org","body":"x"}`, token, 404, nil},
		{"broadcast", "POST", "/api/v1/broadcast", `{"host":"other.org","subject":"Notice","body":"restart at 6"}`, token, 200, func(m map[string]any) bool { return m["recipients"] == 1.0 }},
		{"counters count", "GET", "/api/v1/counters", "", token, 200, func(m map[string]any) bool {
			return m["stanzas_in"].(map[string]any)["message"] == 2.0
		}},
		{"plugins", "GET", "/api/v1/plugins", "", token, 200, func(m map[string]any) bool { return len(m["plugins"].([]any)) == 1 }},
		{"restart", "POST", "/api/v1/plugins/store/restart", "", token, 202, nil},
		{"restart, unknown", "POST", "/api/v1/plugins/nope/restart", "", token, 404, nil},
		{"config check", "POST", "/api/v1/config/check", "", token, 200, func(m map[string]any) bool { return m["ok"] == false && len(m["problems"].([]any)) == 1 }},
		{"reload", "POST", "/api/v1/config/reload", "", token, 200, func(m map[string]any) bool {
			return len(m["applied"].([]any)) == 3 && len(m["need_restart"].([]any)) == 1
		}},
		{"reload of a broken file", "POST", "/api/v1/config/reload", "", token, 422, func(m map[string]any) bool {
			return strings.Contains(m["error"].(string), "nothing changed")
		}},
		{"delete", "DELETE", "/api/v1/users/bob@example.org", "", token, 204, nil},
		{"delete, absent", "DELETE", "/api/v1/users/bob@example.org", "", token, 404, nil},
		{"unknown call", "GET", "/api/v1/nonsense", "", token, 404, nil},
	} {
		status, body := call(tc.method, tc.path, tc.body, tc.token)
		if status != tc.status || (tc.check != nil && !tc.check(body)) {
			t.Errorf("%s: %s %s: %d %v, want %d", tc.name, tc.method, tc.path, status, body, tc.status)
		}
		if status >= 400 && (body["error"] == nil || body["code"] == nil) {
			t.Errorf("%s: error answer without error and code: %v", tc.name, body)
		}
	}
	if len(f.sent) != 2 || f.sent[0].Attr("from") != "example.org" || f.sent[1].Attr("type") != "headline" {
		t.Errorf("sent %v", f.sent)
	}
	if !slices.Equal(f.restarts, []string{"store"}) {
		t.Errorf("restarts %v", f.restarts)
	}
	if !strings.Contains(logs.String(), "admin API call refused") {
		t.Errorf("refused calls not logged:\n%s", logs.String())
	}
	f.down = true
	if status, _ := call("GET", "/api/v1/users?host=example.org", "", token); status != 503 {
		t.Errorf("backend down: %d, want 503", status)
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !v.seen[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("operations of openapi.yaml no test exercised: %q", missing)
	}
}
