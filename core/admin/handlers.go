package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, text string) {
	writeJSON(w, status, apiError{Error: text, Code: code})
}

// fail answers with what err means: a backend's or a module's error
// mapped to an HTTP status.
func (a *api) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var se *stanza.Error
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		writeError(w, http.StatusNotFound, "not-found", what+": not found")
	case errors.Is(err, sdk.ErrExists):
		writeError(w, http.StatusConflict, "exists", what+": already exists")
	case errors.Is(err, sdk.ErrReadOnly):
		writeError(w, http.StatusForbidden, "read-only", what+": the backend is read-only")
	case errors.Is(err, sdk.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid", what+": "+err.Error())
	case errors.As(err, &se):
		status := map[string]int{
			"item-not-found": http.StatusNotFound, "not-allowed": http.StatusForbidden, "forbidden": http.StatusForbidden,
			"service-unavailable": http.StatusServiceUnavailable, "jid-malformed": http.StatusBadRequest,
			"bad-request": http.StatusBadRequest, "not-acceptable": http.StatusBadRequest,
		}[se.Condition]
		if status == 0 {
			status = http.StatusInternalServerError
		}
		writeError(w, status, se.Condition, what+": "+se.Error())
	default:
		// sdk.ErrUnavailable and anything unexpected: the backend is
		// down or failing; the client may retry.
		a.cfg.Log.Warn("admin API call failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", what+": "+err.Error())
	}
}

// decode reads a JSON body into v, answering a malformed, oversized or
// unexpected one with 400 (413 for too large).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "malformed", "the body is not the JSON this call takes: "+err.Error())
		return false
	}
	return true
}

// account parses an account address (user@host of a configured host).
func (a *api) account(w http.ResponseWriter, s, what string) (jid.JID, bool) {
	j, err := jid.Parse(s)
	if err != nil || j.Local() == "" || j.Resource() != "" {
		writeError(w, http.StatusBadRequest, "jid-malformed", fmt.Sprintf("%s %q is not an account address (user@host)", what, s))
		return jid.JID{}, false
	}
	if !a.isHost(j.Domain()) {
		writeError(w, http.StatusNotFound, "host-unknown", fmt.Sprintf("%s: host %s is not configured here", what, j.Domain()))
		return jid.JID{}, false
	}
	return j, true
}

func (a *api) isHost(h string) bool {
	for _, x := range a.cfg.Users.Hosts() {
		if strings.EqualFold(x, h) {
			return true
		}
	}
	return false
}

type hostStats struct {
	Host        string `json:"host"`
	OnlineUsers int    `json:"online_users"`
	Sessions    int    `json:"sessions"`
}

type stats struct {
	Version       string      `json:"version"`
	Started       time.Time   `json:"started"`
	UptimeSeconds int64       `json:"uptime_seconds"`
	OnlineUsers   int         `json:"online_users"`
	Sessions      int         `json:"sessions"`
	Hosts         []hostStats `json:"hosts"`
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	st := stats{Version: a.cfg.Version, Started: a.cfg.Started.UTC(), UptimeSeconds: int64(time.Since(a.cfg.Started).Seconds()), Hosts: []hostStats{}}
	for _, h := range a.cfg.Users.Hosts() {
		hs := hostStats{Host: h}
		users := map[string]bool{}
		for _, s := range a.cfg.Sessions.Sessions(h) {
			hs.Sessions++
			bare, _, _ := strings.Cut(s.JID, "/")
			users[bare] = true
		}
		hs.OnlineUsers = len(users)
		st.Sessions += hs.Sessions
		st.OnlineUsers += hs.OnlineUsers
		st.Hosts = append(st.Hosts, hs)
	}
	writeJSON(w, http.StatusOK, st)
}

// countersAnswer is the counters with the server's clock: the page
// computes rates from uptime_ms, which is monotonic, rather than from
// the browser's clock and the jitter of its timers.
type countersAnswer struct {
	UptimeMillis int64 `json:"uptime_ms"`
	Counters
}

func (a *api) counters(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Counters == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "koi runs without counters")
		return
	}
	c := a.cfg.Counters.Counters()
	writeJSON(w, http.StatusOK, countersAnswer{UptimeMillis: time.Since(a.cfg.Started).Milliseconds(), Counters: c})
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.URL.Query().Get("host"))
	if host == "" {
		if hs := a.cfg.Users.Hosts(); len(hs) == 1 {
			host = hs[0]
		} else {
			writeError(w, http.StatusBadRequest, "host-required", "name the host: ?host=, one of "+strings.Join(hs, ", "))
			return
		}
	}
	if !a.isHost(host) {
		writeError(w, http.StatusNotFound, "host-unknown", "host "+host+" is not configured here")
		return
	}
	users, note, err := a.cfg.Users.ListUsers(r.Context(), host)
	if err != nil {
		a.fail(w, r, "listing the users of "+host, err)
		return
	}
	if users == nil {
		users = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"host": host, "users": users, "note": note})
}

type credentials struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if !decode(w, r, &c) {
		return
	}
	j, ok := a.account(w, c.JID, "jid")
	if !ok {
		return
	}
	if c.Password == "" {
		writeError(w, http.StatusBadRequest, "invalid", "password: must not be empty")
		return
	}
	if err := a.cfg.Users.CreateUser(r.Context(), j, c.Password); err != nil {
		a.fail(w, r, j.String(), err)
		return
	}
	a.cfg.Log.Info("account created through the admin API", "jid", j.String(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, map[string]string{"jid": j.String()})
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	exists, err := a.cfg.Users.UserExists(r.Context(), j)
	switch {
	case err != nil:
		a.fail(w, r, j.String(), err)
		return
	case !exists:
		writeError(w, http.StatusNotFound, "not-found", j.String()+": no such account")
		return
	}
	sessions := []Session{}
	for _, s := range a.cfg.Sessions.Sessions(j.Domain()) {
		if bare, _, _ := strings.Cut(s.JID, "/"); bare == j.String() {
			sessions = append(sessions, s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jid": j.String(), "sessions": sessions})
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	if err := a.cfg.Users.DeleteUser(r.Context(), j); err != nil {
		a.fail(w, r, j.String(), err)
		return
	}
	a.cfg.Log.Info("account deleted through the admin API", "jid", j.String(), "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

type passwordBody struct {
	Password string `json:"password"`
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	var p passwordBody
	if !decode(w, r, &p) {
		return
	}
	if p.Password == "" {
		writeError(w, http.StatusBadRequest, "invalid", "password: must not be empty")
		return
	}
	if err := a.cfg.Users.SetPassword(r.Context(), j, p.Password); err != nil {
		a.fail(w, r, j.String(), err)
		return
	}
	a.cfg.Log.Info("password changed through the admin API", "jid", j.String(), "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) checkPassword(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	var p passwordBody
	if !decode(w, r, &p) {
		return
	}
	valid, err := a.cfg.Users.CheckPassword(r.Context(), j, p.Password)
	if err != nil {
		a.fail(w, r, j.String(), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"valid": valid})
}

type rosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name,omitempty"`
	Subscription string   `json:"subscription"`
	Ask          bool     `json:"ask,omitempty"`
	Groups       []string `json:"groups"`
}

func (a *api) getRoster(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	items, err := a.cfg.Rosters.RosterItems(r.Context(), j)
	if err != nil {
		a.fail(w, r, "the roster of "+j.String(), err)
		return
	}
	out := make([]rosterItem, 0, len(items))
	for _, it := range items {
		g := it.Groups
		if g == nil {
			g = []string{}
		}
		out = append(out, rosterItem{JID: it.JID, Name: it.Name, Subscription: string(it.Subscription), Ask: it.Ask, Groups: g})
	}
	writeJSON(w, http.StatusOK, map[string]any{"jid": j.String(), "items": out})
}

type rosterChange struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

func (a *api) contact(w http.ResponseWriter, s string) (jid.JID, bool) {
	c, err := jid.Parse(s)
	if err != nil || c.Resource() != "" {
		writeError(w, http.StatusBadRequest, "jid-malformed", fmt.Sprintf("contact %q is not a bare JID", s))
		return jid.JID{}, false
	}
	return c, true
}

func (a *api) setRosterItem(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	c, ok := a.contact(w, r.PathValue("contact"))
	if !ok {
		return
	}
	var ch rosterChange
	if !decode(w, r, &ch) {
		return
	}
	if len(ch.Name) > 1023 {
		writeError(w, http.StatusBadRequest, "invalid", "name: longer than 1023 bytes")
		return
	}
	for _, g := range ch.Groups {
		if g == "" || len(g) > 1023 {
			writeError(w, http.StatusBadRequest, "invalid", "groups: names must be 1 to 1023 bytes")
			return
		}
	}
	if err := a.cfg.Rosters.SetRosterItem(r.Context(), j, c, ch.Name, ch.Groups); err != nil {
		a.fail(w, r, "the roster of "+j.String(), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) removeRosterItem(w http.ResponseWriter, r *http.Request) {
	j, ok := a.account(w, r.PathValue("jid"), "jid")
	if !ok {
		return
	}
	c, ok := a.contact(w, r.PathValue("contact"))
	if !ok {
		return
	}
	if err := a.cfg.Rosters.RemoveRosterItem(r.Context(), j, c); err != nil {
		a.fail(w, r, c.String()+" in the roster of "+j.String(), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.URL.Query().Get("host"))
	if host != "" && !a.isHost(host) {
		writeError(w, http.StatusNotFound, "host-unknown", "host "+host+" is not configured here")
		return
	}
	ss := a.cfg.Sessions.Sessions(host)
	if ss == nil {
		ss = []Session{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": ss})
}

func (a *api) kick(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	full, err := jid.Parse(q.Get("jid"))
	if err != nil || full.Resource() == "" {
		writeError(w, http.StatusBadRequest, "jid-malformed", fmt.Sprintf("jid %q is not a session's full JID (user@host/resource)", q.Get("jid")))
		return
	}
	text := q.Get("reason")
	if text == "" {
		text = "disconnected by an administrator"
	}
	if !a.cfg.Sessions.Kick(full, text) {
		writeError(w, http.StatusNotFound, "not-found", full.String()+": no such session")
		return
	}
	a.cfg.Log.Info("session ended through the admin API", "jid", full.String(), "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

type message struct {
	To      string `json:"to"`
	From    string `json:"from"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// stanza builds the message element, checking what the caller gave.
func (m message) stanza(w http.ResponseWriter, defaultFrom string) (*xmlstream.Element, bool) {
	switch m.Type {
	case "":
		m.Type = "chat"
	case "chat", "normal", "headline":
	default:
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("type %q: want chat, normal or headline", m.Type))
		return nil, false
	}
	if m.Body == "" && m.Subject == "" {
		writeError(w, http.StatusBadRequest, "invalid", "a message needs a body or a subject")
		return nil, false
	}
	from := defaultFrom
	if m.From != "" {
		f, err := jid.Parse(m.From)
		if err != nil {
			writeError(w, http.StatusBadRequest, "jid-malformed", fmt.Sprintf("from %q is not a JID", m.From))
			return nil, false
		}
		from = f.String()
	}
	el := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", m.Type).SetAttr("from", from).
		SetAttr("id", fmt.Sprintf("admin-%d", time.Now().UnixNano()))
	if m.Subject != "" {
		el.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "subject").AppendText(m.Subject))
	}
	if m.Body != "" {
		el.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(m.Body))
	}
	return el, true
}

func (a *api) sendMessage(w http.ResponseWriter, r *http.Request) {
	var m message
	if !decode(w, r, &m) {
		return
	}
	to, err := jid.Parse(m.To)
	if err != nil || to.Local() == "" {
		writeError(w, http.StatusBadRequest, "jid-malformed", fmt.Sprintf("to %q is not a user's address", m.To))
		return
	}
	if !a.isHost(to.Domain()) {
		writeError(w, http.StatusNotFound, "host-unknown", "host "+to.Domain()+" is not configured here")
		return
	}
	el, ok := m.stanza(w, to.Domain())
	if !ok {
		return
	}
	el.SetAttr("to", to.String())
	if !a.cfg.Messages.SendMessage(r.Context(), el, to) {
		writeError(w, http.StatusNotFound, "host-unknown", "host "+to.Domain()+" is not configured here")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"to": to.String(), "id": el.Attr("id")})
}

func (a *api) broadcast(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Host string `json:"host"`
		message
	}
	if !decode(w, r, &m) {
		return
	}
	if m.To != "" {
		writeError(w, http.StatusBadRequest, "invalid", "a broadcast goes to every online session: no to")
		return
	}
	host := strings.ToLower(m.Host)
	if host != "" && !a.isHost(host) {
		writeError(w, http.StatusNotFound, "host-unknown", "host "+host+" is not configured here")
		return
	}
	from := host
	if from == "" {
		from = a.cfg.Users.Hosts()[0]
	}
	if m.Type == "" {
		m.Type = "headline"
	}
	el, ok := m.stanza(w, from)
	if !ok {
		return
	}
	n := a.cfg.Messages.Broadcast(host, el)
	a.cfg.Log.Info("broadcast through the admin API", "host", host, "recipients", n, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{"recipients": n})
}

func (a *api) listPlugins(w http.ResponseWriter, r *http.Request) {
	ps := a.cfg.Plugins.Plugins()
	if ps == nil {
		ps = []Plugin{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugins": ps})
}

func (a *api) restartPlugin(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.cfg.Plugins.RestartPlugin(name) {
		writeError(w, http.StatusNotFound, "not-found", "no plugin block named "+name)
		return
	}
	a.cfg.Log.Info("plugin restart requested through the admin API", "plugin", name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, map[string]string{"restarting": name})
}

func (a *api) checkConfig(w http.ResponseWriter, r *http.Request) {
	problems, warnings, err := a.cfg.Check(r.Context())
	if err != nil {
		a.fail(w, r, "checking the configuration", err)
		return
	}
	if problems == nil {
		problems = []string{}
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": len(problems) == 0, "problems": problems, "warnings": warnings})
}

func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	applied, restart, err := a.cfg.Reload(r.Context())
	if err != nil {
		// The file has problems (or the certificate does not load):
		// nothing was changed.
		writeError(w, http.StatusUnprocessableEntity, "config-problems", "nothing changed: "+err.Error())
		return
	}
	if applied == nil {
		applied = []string{}
	}
	if restart == nil {
		restart = []string{}
	}
	a.cfg.Log.Info("configuration reloaded through the admin API", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"applied": applied, "need_restart": restart})
}
