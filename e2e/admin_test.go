package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

const adminToken = "e2e-admin-token-0123456789"

// addAdmin appends an admin block on a free address with adminToken to
// the config at path (koictl reads the token there too) and returns the
// address.
func addAdmin(t *testing.T, path string) string {
	t.Helper()
	addr := freeAddr(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\nadmin { address = \"" + addr + "\"  token = \"" + adminToken + "\" }\n"); err != nil {
		t.Fatal(err)
	}
	return addr
}

// adminAPI calls koi's admin API and decodes the JSON answer.
type adminAPI struct {
	t    *testing.T
	base string
}

func (a adminAPI) call(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			a.t.Errorf("%s %s: not JSON: %q", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func (a adminAPI) want(status int, method, path, body string) map[string]any {
	a.t.Helper()
	got, out := a.call(method, path, body)
	if got != status {
		a.t.Fatalf("%s %s: %d %v, want %d", method, path, got, out, status)
	}
	return out
}

// TestAdminAPI drives the admin API of a real koi: accounts made through
// it log in; roster changes reach the client as pushes; messages and
// broadcasts arrive; a kicked session gets its stream error; a restarted
// plugin comes back with a new process; the config check reads the file.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	adminAddr := freeAddr(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nadmin { address = \"" + adminAddr + "\" }\n")
	f.Close()
	srv := launch(t, dir, path, c2s, c2sTLS, opt, []string{"KOI_ADMIN__TOKEN=" + adminToken})
	srv.waitListening(t, adminAddr) // it starts after the c2s listeners launch waits for
	api := adminAPI{t: t, base: "http://" + adminAddr}

	// No token, no admin.
	req, _ := http.NewRequest("GET", api.base+"/api/v1/stats", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("stats without a token: %v %v", resp, err)
	}

	api.want(201, "POST", "/api/v1/users", `{"jid":"ada@localhost","password":"pw-ada"}`)
	api.want(201, "POST", "/api/v1/users", `{"jid":"ben@localhost","password":"pw-ben"}`)
	api.want(409, "POST", "/api/v1/users", `{"jid":"ada@localhost","password":"again"}`)
	users := api.want(200, "GET", "/api/v1/users?host=localhost", "")
	if got, _ := json.Marshal(users["users"]); string(got) != `["ada@localhost","ben@localhost"]` {
		t.Errorf("users %s", got)
	}
	if out := api.want(200, "POST", "/api/v1/users/ada@localhost/check-password", `{"password":"pw-ada"}`); out["valid"] != true {
		t.Errorf("check-password: %v", out)
	}

	tlsCfg := srv.tlsConfig(t, "localhost")
	ada := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "ada@localhost/desk", "pw-ada")
	ada.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	ada.send("<presence/>")

	st := api.want(200, "GET", "/api/v1/stats", "")
	if st["sessions"] != 1.0 || st["online_users"] != 1.0 {
		t.Errorf("stats %v", st)
	}
	ss := api.want(200, "GET", "/api/v1/sessions", "")
	if s := ss["sessions"].([]any); len(s) != 1 || s[0].(map[string]any)["jid"] != "ada@localhost/desk" {
		t.Errorf("sessions %v", ss)
	}

	// A roster change through the API is pushed to the client.
	api.want(204, "PUT", "/api/v1/users/ada@localhost/roster/ben@localhost", `{"name":"Ben","groups":["Team"]}`)
	push := ada.expect("roster push", func(e *element) bool {
		it := e.path("query", "item")
		return e.is(nsClient, "iq") && e.attr("type") == "set" && it != nil && it.attr("jid") == "ben@localhost"
	})
	if it := push.path("query", "item"); it.attr("name") != "Ben" || it.child(nsRoster, "group") == nil {
		t.Errorf("push %s", push)
	}
	ro := api.want(200, "GET", "/api/v1/users/ada@localhost/roster", "")
	if items := ro["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "Ben" {
		t.Errorf("roster %v", ro)
	}

	// A message to an online user arrives; one to an offline user waits.
	api.want(202, "POST", "/api/v1/messages", `{"to":"ada@localhost","body":"hello from the admin"}`)
	ada.expect("admin message", func(e *element) bool {
		return e.is(nsClient, "message") && e.attr("from") == "localhost" && e.child(nsClient, "body").Text == "hello from the admin"
	})
	api.want(202, "POST", "/api/v1/messages", `{"to":"ben@localhost","body":"while you were away"}`)
	if out := api.want(200, "POST", "/api/v1/broadcast", `{"subject":"Notice","body":"maintenance at 6"}`); out["recipients"] != 1.0 {
		t.Errorf("broadcast: %v", out)
	}
	ada.expect("broadcast", func(e *element) bool {
		return e.is(nsClient, "message") && e.attr("type") == "headline" && e.child(nsClient, "body").Text == "maintenance at 6"
	})
	ben := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "ben@localhost/pc", "pw-ben")
	ben.send("<presence/>")
	ben.expect("offline admin message", func(e *element) bool {
		return e.is(nsClient, "message") && e.child(nsClient, "body") != nil && e.child(nsClient, "body").Text == "while you were away"
	})

	// Removing the contact is pushed too.
	api.want(204, "DELETE", "/api/v1/users/ada@localhost/roster/ben@localhost", "")
	ada.expect("roster removal push", func(e *element) bool {
		it := e.path("query", "item")
		return it != nil && it.attr("jid") == "ben@localhost" && it.attr("subscription") == "remove"
	})

	// Kick.
	api.want(204, "DELETE", "/api/v1/sessions?jid=ada@localhost/desk&reason=please+update", "")
	if cond, err := ada.waitStreamError(waitTimeout); cond != "policy-violation" {
		t.Errorf("kicked session ended with %q (%v)", cond, err)
	}
	// The session goes once its connection has closed.
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := api.call("DELETE", "/api/v1/sessions?jid=ada@localhost/desk", ""); code == 404 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the kicked session is still there: %d", code)
		}
	}

	// A new password works, the old one no longer.
	api.want(204, "PUT", "/api/v1/users/ada@localhost/password", `{"password":"pw-ada-2"}`)
	if out := api.want(200, "POST", "/api/v1/users/ada@localhost/check-password", `{"password":"pw-ada"}`); out["valid"] != false {
		t.Errorf("old password still valid: %v", out)
	}
	login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "ada@localhost/desk", "pw-ada-2").close()

	// Deleting an account ends its sessions.
	api.want(204, "DELETE", "/api/v1/users/ben@localhost", "")
	if cond, _ := ben.waitStreamError(waitTimeout); cond != "not-authorized" {
		t.Errorf("deleted account's session ended with %q", cond)
	}
	api.want(404, "GET", "/api/v1/users/ben@localhost", "")

	// Plugins: healthy, and a restart brings a new process.
	pl := api.want(200, "GET", "/api/v1/plugins", "")
	p0 := pl["plugins"].([]any)[0].(map[string]any)
	if p0["healthy"] != true || p0["pid"] == nil {
		t.Fatalf("plugins %v", pl)
	}
	api.want(202, "POST", "/api/v1/plugins/"+p0["name"].(string)+"/restart", "")
	deadline := time.Now().Add(waitTimeout)
	for {
		p := api.want(200, "GET", "/api/v1/plugins", "")["plugins"].([]any)[0].(map[string]any)
		if p["healthy"] == true && p["pid"] != nil && p["pid"] != p0["pid"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not restarted: %v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := api.want(200, "GET", "/api/v1/users/ada@localhost", ""); out["jid"] != "ada@localhost" {
		t.Errorf("after the restart: %v", out)
	}

	// The config check reads the file on disk.
	if out := api.want(200, "POST", "/api/v1/config/check", ""); out["ok"] != true {
		t.Errorf("config check of the running config: %v", out)
	}
	src, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(src), "roster", "rostr", 1)), 0o600)
	if out := api.want(200, "POST", "/api/v1/config/check", ""); out["ok"] != false || len(out["problems"].([]any)) == 0 {
		t.Errorf("config check of a broken file: %v", out)
	}
	srv.waitLog(t, "admin API call refused")
}

// TestKoictlThroughAdminAPI: with an admin block, koictl talks to the
// running koi: readable tables, -json, and exit codes scripts rely on; a
// deleted account's session ends at once. With koi stopped, the user
// commands work on the plugins directly and the others exit 3.
func TestKoictlThroughAdminAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	adminAddr := addAdmin(t, path)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	srv.waitListening(t, adminAddr)
	koictl := func(want int, args ...string) string {
		t.Helper()
		cmd := exec.Command(koictlBin(), append([]string{"-config", path}, args...)...)
		cmd.Env = koiproc.ChildEnv()
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("koictl %q: exit %d, want %d\n%s", args, code, want, out)
		}
		return string(out)
	}
	koictl(0, "user", "add", "cy@localhost", "pw-cy")
	koictl(5, "user", "add", "cy@localhost", "pw-cy")
	koictl(0, "user", "add", "dee@localhost", "pw-dee")
	if out := koictl(0, "user", "list", "localhost"); out != "cy@localhost\ndee@localhost\n" {
		t.Errorf("user list: %q", out)
	}
	cy := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "cy@localhost/laptop", "pw-cy")
	cy.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	cy.send("<presence><show>away</show></presence>")

	if out := koictl(0, "session", "list"); !regexp.MustCompile(`(?m)^JID\s+AVAILABLE.*\ncy@localhost/laptop\s+true\s+0\s+away`).MatchString(out) {
		t.Errorf("session list:\n%s", out)
	}
	var st struct {
		Sessions int `json:"sessions"`
		Hosts    []struct {
			Host string `json:"host"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(koictl(0, "-json", "stats")), &st); err != nil || st.Sessions != 1 || len(st.Hosts) == 0 {
		t.Errorf("stats -json: %+v %v", st, err)
	}
	koictl(0, "roster", "add", "cy@localhost", "dee@localhost", "Dee", "Work")
	cy.expect("roster push", func(e *element) bool {
		it := e.path("query", "item")
		return it != nil && it.attr("jid") == "dee@localhost" && it.attr("name") == "Dee"
	})
	if out := koictl(0, "roster", "list", "cy@localhost"); !strings.Contains(out, "dee@localhost") || !strings.Contains(out, "Work") {
		t.Errorf("roster list:\n%s", out)
	}
	koictl(4, "roster", "del", "cy@localhost", "nobody@localhost")
	koictl(0, "send", "cy@localhost", "hello from koictl")
	cy.expect("koictl message", func(e *element) bool {
		b := e.child(nsClient, "body")
		return e.is(nsClient, "message") && b != nil && b.Text == "hello from koictl"
	})
	if out := koictl(0, "plugin", "list"); !strings.Contains(out, "store") || !strings.Contains(out, "true") {
		t.Errorf("plugin list:\n%s", out)
	}
	koictl(4, "plugin", "restart", "nope")
	koictl(4, "session", "kick", "cy@localhost/phone")
	koictl(0, "config", "check")
	koictl(2, "session", "kick")

	// Deleting through the running koi ends the session.
	koictl(0, "user", "del", "cy@localhost")
	if cond, _ := cy.waitStreamError(waitTimeout); cond != "not-authorized" {
		t.Errorf("deleted account's session ended with %q", cond)
	}
	koictl(4, "user", "del", "cy@localhost")

	srv.stop(t)
	srv.stopped = true
	koictl(3, "stats")
	koictl(0, "user", "passwd", "dee@localhost", "pw-dee-2") // directly on the plugin
	koictl(4, "user", "del", "nobody@localhost")
}
