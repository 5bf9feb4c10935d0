package websocket

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
)

// RelWebSocket is the XEP-0156 link relation of an RFC 7395 endpoint.
const RelWebSocket = "urn:xmpp:alt-connections:websocket"

// serveHostMeta answers XEP-0156 discovery: /.well-known/host-meta (XRD)
// or host-meta.json (JRD), listing the WebSocket endpoint.
func (s *Server) serveHostMeta(w http.ResponseWriter, r *http.Request, asJSON bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	href := s.webSocketURL(r)
	// A web client on another origin reads this with fetch(); XEP-0156
	// §3.3 asks for CORS. It reveals nothing but the endpoint.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		type link struct {
			Rel  string `json:"rel"`
			Href string `json:"href"`
		}
		json.NewEncoder(w).Encode(struct { //nolint:errcheck // the client went away
			Links []link `json:"links"`
		}{[]link{{RelWebSocket, href}}})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='" + RelWebSocket + "' href='")
	xml.EscapeText(&b, []byte(href)) //nolint:errcheck // a strings.Builder does not fail
	b.WriteString("'/>\n</XRD>\n")
	w.Write([]byte(b.String())) //nolint:errcheck // the client went away
}

// webSocketURL is the configured public URL, or one built from how the
// client reached us: the Host it asked for, ws or wss, the path.
func (s *Server) webSocketURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	return scheme + "://" + r.Host + s.cfg.Path
}
