// Package admin is koi's administration API: JSON over HTTP on its own
// listener, off unless configured, every call authenticated with a bearer
// token. It manages accounts, sessions and rosters, sends messages,
// reports statistics, counters and plugin health, restarts plugins and
// checks the configuration; under /admin/ it serves a web page (package
// webui) that shows them and graphs the counters. openapi.yaml in this directory is its contract; koictl
// uses it when koi runs.
//
// The package knows koi only through the small interfaces below, which
// core/server implements over the modules, the router and the plugin host.
package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/admin/webui"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Users manages accounts.
type Users interface {
	// Hosts lists the configured hosts.
	Hosts() []string
	// ListUsers returns a host's accounts, sorted, and a note on what
	// could not be listed ("" when everything was).
	ListUsers(ctx context.Context, host string) (users []string, note string, err error)
	UserExists(ctx context.Context, account jid.JID) (bool, error)
	CreateUser(ctx context.Context, account jid.JID, password string) error
	// SetPassword also revokes the account's FAST tokens.
	SetPassword(ctx context.Context, account jid.JID, password string) error
	CheckPassword(ctx context.Context, account jid.JID, password string) (bool, error)
	// DeleteUser deletes the account with its data and ends its sessions.
	DeleteUser(ctx context.Context, account jid.JID) error
}

// Session is what the API shows of a session.
type Session struct {
	JID       string `json:"jid"`
	Available bool   `json:"available"`
	Priority  int    `json:"priority"`
	Show      string `json:"show,omitempty"`
	Status    string `json:"status,omitempty"`
}

// Sessions lists and ends sessions.
type Sessions interface {
	// Sessions returns the sessions of host ("" for all), sorted by JID.
	Sessions(host string) []Session
	// Kick ends a session with a stream error; false if there is none.
	Kick(full jid.JID, text string) bool
}

// Rosters changes rosters the way a user's client would (pushes to the
// user's resources included).
type Rosters interface {
	RosterItems(ctx context.Context, owner jid.JID) ([]sdk.RosterItem, error)
	SetRosterItem(ctx context.Context, owner, contact jid.JID, name string, groups []string) error
	RemoveRosterItem(ctx context.Context, owner, contact jid.JID) error
}

// Messages delivers server messages.
type Messages interface {
	// SendMessage delivers el to a local address; false if to's domain
	// is not a host.
	SendMessage(ctx context.Context, el *xmlstream.Element, to jid.JID) bool
	// Broadcast sends el to every available session of host ("" for all
	// hosts) and returns how many got it.
	Broadcast(host string, el *xmlstream.Element) int
}

// Plugin is what the API shows of a plugin.
type Plugin struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	PID     int    `json:"pid,omitempty"`
}

// Plugins reports and restarts plugins.
type Plugins interface {
	Plugins() []Plugin
	// RestartPlugin asks for the plugin's process to be replaced; false
	// if there is no such plugin.
	RestartPlugin(name string) bool
}

// Counters are koi's cumulative client counters, the ones /metrics
// exports; the web page polls them and draws the rates.
type Counters struct {
	ConnectionsOpen  int64             `json:"connections_open"`
	ConnectionsTotal uint64            `json:"connections_total"`
	Logins           map[string]uint64 `json:"logins"`
	StanzasIn        map[string]uint64 `json:"stanzas_in"`
	StanzasOut       map[string]uint64 `json:"stanzas_out"`
}

// CounterReader reads the counters; it is called once a second per open
// page, so it must be cheap.
type CounterReader interface {
	Counters() Counters
}

// ConfigCheck checks the configuration file koi was started with, as
// `koi check-config` does.
type ConfigCheck func(ctx context.Context) (problems, warnings []string, err error)

// Reload re-reads the configuration file and applies what can change
// while koi runs (log level, certificate, limits, plugins, the hosts'
// backends); it returns one item per change applied and the changed
// sections that need a restart. An error means nothing changed.
type Reload func(ctx context.Context) (applied, needRestart []string, err error)

// Config is what the API serves and how.
type Config struct {
	// Token is the bearer token every call must carry.
	Token    string
	Version  string
	Started  time.Time
	Log      hclog.Logger
	Users    Users
	Sessions Sessions
	Rosters  Rosters
	Messages Messages
	Plugins  Plugins
	// Counters may be nil: the counters call then answers 503.
	Counters CounterReader
	Check    ConfigCheck
	Reload   Reload
}

// maxBody bounds request bodies: the largest legitimate one is a message.
const maxBody = 256 << 10

// Handler returns the admin listener's HTTP handler: the API under
// /api/v1/ and the web page under /admin/.
func Handler(cfg Config) http.Handler {
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/stats", a.stats)
	mux.HandleFunc("GET /api/v1/counters", a.counters)
	mux.HandleFunc("GET /api/v1/users", a.listUsers)
	mux.HandleFunc("POST /api/v1/users", a.createUser)
	mux.HandleFunc("GET /api/v1/users/{jid}", a.getUser)
	mux.HandleFunc("DELETE /api/v1/users/{jid}", a.deleteUser)
	mux.HandleFunc("PUT /api/v1/users/{jid}/password", a.setPassword)
	mux.HandleFunc("POST /api/v1/users/{jid}/check-password", a.checkPassword)
	mux.HandleFunc("GET /api/v1/users/{jid}/roster", a.getRoster)
	mux.HandleFunc("PUT /api/v1/users/{jid}/roster/{contact}", a.setRosterItem)
	mux.HandleFunc("DELETE /api/v1/users/{jid}/roster/{contact}", a.removeRosterItem)
	mux.HandleFunc("GET /api/v1/sessions", a.listSessions)
	mux.HandleFunc("DELETE /api/v1/sessions", a.kick)
	mux.HandleFunc("POST /api/v1/messages", a.sendMessage)
	mux.HandleFunc("POST /api/v1/broadcast", a.broadcast)
	mux.HandleFunc("GET /api/v1/plugins", a.listPlugins)
	mux.HandleFunc("POST /api/v1/plugins/{name}/restart", a.restartPlugin)
	mux.HandleFunc("POST /api/v1/config/check", a.checkConfig)
	mux.HandleFunc("POST /api/v1/config/reload", a.reload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not-found", "no such API call: "+r.Method+" "+r.URL.Path)
	})
	// The page's files are public: all they hold is a login form and the
	// script that calls the API with the token the user types.
	top := http.NewServeMux()
	top.Handle("/api/", a.authenticate(mux))
	top.Handle("GET /admin/", http.StripPrefix("/admin", webui.Handler()))
	top.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// Relative, so that it holds behind a proxy that adds a prefix;
		// http.Redirect would make it absolute.
		w.Header().Set("Location", "admin/")
		w.WriteHeader(http.StatusFound)
	})
	top.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not-found", "nothing here: the API is under /api/v1/, the web page under /admin/")
	})
	return secure(top)
}

// secure sets the headers every answer carries: nothing here may be
// framed, sniffed into another type, leak a Referer, or be cached (the
// page's files carry an ETag and revalidate).
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

type api struct{ cfg Config }

// authenticate lets through only calls with the right bearer token.
func (a *api) authenticate(next http.Handler) http.Handler {
	want := []byte(a.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			reason, text := "wrong token", "wrong token: the bearer token is not admin.token"
			if !ok {
				reason, text = "no bearer token", "a bearer token is required: Authorization: Bearer <admin.token>"
			}
			a.cfg.Log.Info("admin API call refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "reason", reason)
			w.Header().Set("WWW-Authenticate", `Bearer realm="koi"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", text)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}
