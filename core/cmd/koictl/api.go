package main

// koictl's side of koi's admin API (core/admin): while koi runs with an
// admin block, koictl asks koi itself, so that sessions, cached rosters and
// plugin state stay consistent (a deleted account's sessions end, say).

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/koi-im/koi/core/config"
)

// Exit codes scripts can rely on.
const (
	exitOK         = 0
	exitFailed     = 1 // anything else: a backend error, a refused change
	exitUsage      = 2
	exitNotRunning = 3 // the command needs a running koi with an admin block
	exitNotFound   = 4 // no such account, session, contact or plugin
	exitExists     = 5 // the account exists already
)

// apiError is an error answer of the admin API.
type apiError struct {
	Status int
	Code   string `json:"code"`
	Text   string `json:"error"`
}

func (e *apiError) Error() string { return e.Text }

// errNotRunning: no admin API to talk to.
var errNotRunning = errors.New("koi is not running")

// apiClient calls the admin API of the koi that cfg configures.
type apiClient struct {
	base, token string
	http        *http.Client
}

// newAPIClient returns nil when cfg has no admin block.
func newAPIClient(cfg *config.Config) *apiClient {
	a := cfg.Admin
	if a.Address == "" {
		return nil
	}
	host, port, _ := net.SplitHostPort(a.Address)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // a wildcard listener is reached on loopback
	}
	scheme := "http"
	tr := &http.Transport{}
	if a.TLS {
		scheme = "https"
		// koi's own certificate, often self-signed: the token is the
		// authentication, and the address is the operator's own config.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return &apiClient{
		base:  scheme + "://" + net.JoinHostPort(host, port),
		token: a.Token,
		http:  &http.Client{Transport: tr, Timeout: time.Minute},
	}
}

// do sends body (nil for none) as JSON and decodes the answer into out
// (nil to ignore it).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (nothing answers at %s)", errNotRunning, c.base)
		}
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: reading the answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Text == "" {
			e.Text = fmt.Sprintf("admin API: %s", resp.Status)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			e.Text += " (check admin.token, or KOI_ADMIN__TOKEN, against the running koi's)"
		}
		return e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("admin API: the answer is not JSON: %w", err)
		}
	}
	return nil
}

// exitCode maps an error to koictl's exit code.
func exitCode(err error) int {
	var ae *apiError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errNotRunning):
		return exitNotRunning
	case errors.Is(err, errNotFound), errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return exitNotFound
	case errors.Is(err, errExists), errors.As(err, &ae) && ae.Status == http.StatusConflict:
		return exitExists
	}
	return exitFailed
}

// apiCmd runs the commands that only a running koi can answer.
func apiCmd(ctx context.Context, c *apiClient, jsonOut bool, cmd string, args []string, stdout io.Writer) error {
	if c == nil {
		return fmt.Errorf("%w: %s needs koi's admin API, and the config has no admin block (admin { address = \"127.0.0.1:5280\" } and a token)", errNotRunning, cmd)
	}
	var out map[string]any
	show := func(method, path string, body any, print func(map[string]any, *tabwriter.Writer)) error {
		if err := c.do(ctx, method, path, body, &out); err != nil {
			return err
		}
		if jsonOut {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if out == nil {
				out = map[string]any{}
			}
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		print(out, tw)
		return tw.Flush()
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	need := func(min, max int) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("%w: %s takes %d to %d arguments", errUsage, cmd, min, max)
		}
		return nil
	}
	switch cmd {
	case "stats":
		if err := need(0, 0); err != nil {
			return err
		}
		return show("GET", "/api/v1/stats", nil, func(m map[string]any, tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "version\t%v\nup since\t%v (%v s)\nonline users\t%v\nsessions\t%v\n\nHOST\tONLINE USERS\tSESSIONS\n",
				m["version"], m["started"], m["uptime_seconds"], m["online_users"], m["sessions"])
			for _, h := range list(m["hosts"]) {
				fmt.Fprintf(tw, "%v\t%v\t%v\n", h["host"], h["online_users"], h["sessions"])
			}
		})
	case "session list":
		if err := need(0, 1); err != nil {
			return err
		}
		return show("GET", "/api/v1/sessions?host="+url.QueryEscape(arg(0)), nil, func(m map[string]any, tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "JID\tAVAILABLE\tPRIORITY\tSHOW\tSTATUS")
			for _, s := range list(m["sessions"]) {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\n", s["jid"], s["available"], s["priority"], str(s["show"]), str(s["status"]))
			}
		})
	case "session kick":
		if err := need(1, 2); err != nil {
			return err
		}
		q := url.Values{"jid": {arg(0)}}
		if r := arg(1); r != "" {
			q.Set("reason", r)
		}
		return show("DELETE", "/api/v1/sessions?"+q.Encode(), nil, func(map[string]any, *tabwriter.Writer) {
			fmt.Fprintf(stdout, "ended the session %s\n", arg(0))
		})
	case "plugin list":
		if err := need(0, 0); err != nil {
			return err
		}
		return show("GET", "/api/v1/plugins", nil, func(m map[string]any, tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "NAME\tHEALTHY\tPID")
			for _, p := range list(m["plugins"]) {
				fmt.Fprintf(tw, "%v\t%v\t%v\n", p["name"], p["healthy"], str(p["pid"]))
			}
		})
	case "plugin restart":
		if err := need(1, 1); err != nil {
			return err
		}
		return show("POST", "/api/v1/plugins/"+url.PathEscape(arg(0))+"/restart", nil, func(map[string]any, *tabwriter.Writer) {
			fmt.Fprintf(stdout, "restarting plugin %s\n", arg(0))
		})
	case "roster list":
		if err := need(1, 1); err != nil {
			return err
		}
		return show("GET", "/api/v1/users/"+url.PathEscape(arg(0))+"/roster", nil, func(m map[string]any, tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "CONTACT\tNAME\tSUBSCRIPTION\tGROUPS")
			for _, it := range list(m["items"]) {
				var groups []string
				for _, g := range it["groups"].([]any) {
					groups = append(groups, fmt.Sprint(g))
				}
				fmt.Fprintf(tw, "%v\t%v\t%v\t%s\n", it["jid"], str(it["name"]), it["subscription"], strings.Join(groups, ", "))
			}
		})
	case "roster add":
		if len(args) < 2 {
			return fmt.Errorf("%w: roster add JID CONTACT [NAME [GROUP...]]", errUsage)
		}
		body := map[string]any{"name": arg(2), "groups": append([]string{}, args[min(3, len(args)):]...)}
		return show("PUT", "/api/v1/users/"+url.PathEscape(arg(0))+"/roster/"+url.PathEscape(arg(1)), body, func(map[string]any, *tabwriter.Writer) {
			fmt.Fprintf(stdout, "%s is in the roster of %s\n", arg(1), arg(0))
		})
	case "roster del":
		if err := need(2, 2); err != nil {
			return err
		}
		return show("DELETE", "/api/v1/users/"+url.PathEscape(arg(0))+"/roster/"+url.PathEscape(arg(1)), nil, func(map[string]any, *tabwriter.Writer) {
			fmt.Fprintf(stdout, "removed %s from the roster of %s\n", arg(1), arg(0))
		})
	case "send":
		if err := need(2, 2); err != nil {
			return err
		}
		return show("POST", "/api/v1/messages", map[string]string{"to": arg(0), "body": arg(1)}, func(m map[string]any, _ *tabwriter.Writer) {
			fmt.Fprintf(stdout, "sent to %v\n", m["to"])
		})
	case "broadcast":
		if err := need(1, 2); err != nil {
			return err
		}
		body := map[string]string{"body": arg(len(args) - 1)}
		if len(args) == 2 {
			body["host"] = arg(0)
		}
		return show("POST", "/api/v1/broadcast", body, func(m map[string]any, _ *tabwriter.Writer) {
			fmt.Fprintf(stdout, "sent to %v sessions\n", m["recipients"])
		})
	case "config check":
		if err := need(0, 0); err != nil {
			return err
		}
		err := show("POST", "/api/v1/config/check", nil, func(m map[string]any, _ *tabwriter.Writer) {
			for _, w := range m["warnings"].([]any) {
				fmt.Fprintf(stdout, "warning: %v\n", w)
			}
			for _, p := range m["problems"].([]any) {
				fmt.Fprintf(stdout, "problem: %v\n", p)
			}
			if m["ok"] == true {
				fmt.Fprintln(stdout, "OK: the configuration file would start koi")
			}
		})
		if err == nil && out["ok"] != true {
			return errors.New("the configuration file has problems: a restart would fail")
		}
		return err
	}
	return fmt.Errorf("%w: unknown command %s", errUsage, cmd)
}

// list reads a JSON array of objects.
func list(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// apiUserCmd runs a user command through the admin API. handled is false
// when koi does not run (the caller then works on the plugins directly).
func apiUserCmd(ctx context.Context, c *apiClient, verb string, args []string, pw func() (string, error), stdout io.Writer) (handled bool, err error) {
	if c == nil {
		return false, nil
	}
	// Ask first whether koi answers, before reading a password.
	if err := c.do(ctx, "GET", "/api/v1/stats", nil, nil); errors.Is(err, errNotRunning) {
		return false, nil
	} else if err != nil {
		return true, err
	}
	account := ""
	if len(args) > 0 {
		account = args[0]
	}
	switch verb {
	case "list":
		var out struct {
			Users []string `json:"users"`
			Note  string   `json:"note"`
		}
		q := ""
		if account != "" {
			q = "?host=" + url.QueryEscape(account)
		}
		if err := c.do(ctx, "GET", "/api/v1/users"+q, nil, &out); err != nil {
			return true, err
		}
		sort.Strings(out.Users)
		for _, u := range out.Users {
			fmt.Fprintln(stdout, u)
		}
		if out.Note != "" && len(out.Users) == 0 {
			return true, errors.New(out.Note)
		}
		return true, nil
	case "add", "passwd":
		p, err := pw()
		if err != nil {
			return true, err
		}
		if verb == "add" {
			err = c.do(ctx, "POST", "/api/v1/users", map[string]string{"jid": account, "password": p}, nil)
		} else {
			err = c.do(ctx, "PUT", "/api/v1/users/"+url.PathEscape(account)+"/password", map[string]string{"password": p}, nil)
		}
		if err != nil {
			return true, err
		}
		if verb == "add" {
			fmt.Fprintf(stdout, "created %s\n", account)
		} else {
			fmt.Fprintf(stdout, "changed the password of %s\n", account)
		}
		return true, nil
	case "del":
		if err := c.do(ctx, "DELETE", "/api/v1/users/"+url.PathEscape(account), nil, nil); err != nil {
			return true, err
		}
		fmt.Fprintf(stdout, "deleted %s\n", account)
		return true, nil
	}
	return false, nil
}
