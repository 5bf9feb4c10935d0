package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const adminToken = "e2e-admin-token-0123456789"

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
	if cond, _ := ada.waitStreamError(waitTimeout); cond != "policy-violation" {
		t.Errorf("kicked session ended with %q", cond)
	}
	api.want(404, "DELETE", "/api/v1/sessions?jid=ada@localhost/desk", "")

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
	if !strings.Contains(srv.log.String(), "admin API call refused") {
		t.Error("the refused call is not in koi's log")
	}
}
