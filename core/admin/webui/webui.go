// Package webui is the admin listener's web page: status, online users per
// host, plugin health and a live graph of stanzas and logins per second.
// It is plain HTML, CSS and JavaScript embedded in the binary, with no
// build step and nothing fetched from elsewhere. The page holds no data of
// its own: it asks the admin API, sending the token the user types as the
// Authorization header (kept in sessionStorage, never in a URL).
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Policy is the Content-Security-Policy of the page: its own script and
// style files only (no inline script or style, so an injected string can
// not run), API calls to its own origin, no forms sent anywhere (the
// token form is handled by the script), never framed.
const Policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// file is one embedded file, ready to serve.
type file struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the page's files at / (index.html) and /NAME.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static")
		files[name] = file{name: name, body: b, ctype: types[path.Ext(p)], etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in: this cannot happen in a built koi;
		// say so rather than serve half a page.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "koi's admin page is broken: "+err.Error(), http.StatusInternalServerError)
		})
	}
	files["/"] = files["/index.html"]
	delete(files, "/index.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		h := w.Header()
		if !ok {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("404: no such file in koi's admin page\n"))
			return
		}
		h.Set("Content-Security-Policy", Policy)
		h.Set("Content-Type", f.ctype)
		// Revalidated every time, so an upgraded koi serves its new page
		// at once; the ETag keeps that to a 304.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
