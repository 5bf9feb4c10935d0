package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// Config is what the page needs to know.
type Config struct {
	WebSocketURL string // koi's RFC 7395 endpoint, ws:// or wss://
	Domain       string // the XMPP domain a bare user name logs in to
	Dist         string // Converse.js's dist directory
}

// page is the one HTML page: Converse in full screen. The settings are
// passed as JSON, so no value is ever pasted into script as text.
var page = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>koi webchat</title>
<link rel="stylesheet" href="/converse.min.css">
<script type="module" src="/converse.min.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript.</noscript>
<script id="koi-settings" type="application/json">{{.}}</script>
<script type="module">
converse.initialize(JSON.parse(document.getElementById("koi-settings").textContent));
</script>
</body>
</html>
`))

// settings are Converse's options (https://conversejs.org/docs/html/configuration.html).
func settings(c Config) map[string]any {
	return map[string]any{
		"view_mode":     "fullscreen",
		"websocket_url": c.WebSocketURL,
		// The WebSocket URL is given, so no XEP-0156 lookup on the
		// domain (which, for a test domain, has no web server).
		"discover_connection_methods": false,
		"default_domain":              c.Domain,
		"assets_path":                 "/",
		"authentication":              "login",
		"auto_reconnect":              true,
		// Keep nothing of a session in the browser's storage beyond the
		// tab: two users in two tabs of one browser stay apart.
		"persistent_store": "sessionStorage",
		// A message from someone not (yet) in the roster still opens a
		// chat, as users expect of a chat client.
		"allow_non_roster_messaging": true,
		"play_sounds":                false,
		"show_desktop_notifications": false,
	}
}

// NewHandler serves the page at / and Converse's dist files beside it.
func NewHandler(c Config) (http.Handler, error) {
	u, err := url.Parse(c.WebSocketURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("-websocket: want a ws:// or wss:// URL like ws://127.0.0.1:5280/xmpp-websocket, got %q", c.WebSocketURL)
	}
	if c.Domain == "" {
		return nil, fmt.Errorf("-domain: empty; want the XMPP domain users log in to, like localhost")
	}
	if _, err := os.Stat(filepath.Join(c.Dist, "converse.min.js")); err != nil {
		return nil, fmt.Errorf("-dist: no Converse.js in %s (run npm ci in examples/webchat): %w", c.Dist, err)
	}
	js, err := json.Marshal(settings(c))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	// template.JS: json.Marshal escapes <, > and & so the JSON cannot
	// close the script element.
	if err := page.Execute(&b, template.JS(js)); err != nil {
		return nil, err
	}
	index := b.Bytes()
	files := http.FileServer(http.Dir(c.Dist))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(index)
	})
	mux.Handle("GET /", files)
	return mux, nil
}
