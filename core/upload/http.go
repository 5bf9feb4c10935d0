package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// inlineTypes are the media types a browser may show in the page: media
// that runs no script. Anything else is served as an attachment, so an
// uploaded HTML or SVG file cannot run script on this origin.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/avif": true,
	"image/heic": true, "image/bmp": true,
	"text/plain": true,
}

func inline(mediaType string) bool {
	return inlineTypes[mediaType] || strings.HasPrefix(mediaType, "video/") || strings.HasPrefix(mediaType, "audio/")
}

// ServeHTTP takes uploads (PUT with a slot's signed URL) and serves files
// (GET and HEAD, with ranges), with the CORS headers web clients need.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	// No credentials go with these requests, so any header a page asks
	// for may come; Content-Type is the one uploads need.
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	} else {
		h.Set("Access-Control-Allow-Headers", "Content-Type")
	}
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Disposition")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, name, ok := splitPath(r.URL.Path)
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPut:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		httpError(w, http.StatusMethodNotAllowed, "use GET, HEAD or PUT")
	case !ok:
		httpError(w, http.StatusNotFound, "no such file")
	case r.Method == http.MethodPut:
		s.put(w, r, id, name)
	default:
		s.get(w, r, id, name)
	}
}

// splitPath takes the id and name from a path ending in /ID/NAME; what
// comes before is the URL base's own path, which a proxy may or may not
// pass on.
func splitPath(p string) (id, name string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	j := strings.LastIndexByte(p[:i], '/')
	if j < 0 {
		return "", "", false
	}
	id, name = p[j+1:i], p[i+1:]
	return id, name, validID(id) && validURLName(name)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func (s *Service) put(w http.ResponseWriter, r *http.Request, id, name string) {
	sl, err := s.sign.verify(id, name, r.URL.Query(), s.cfg.Now())
	if err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return
	}
	switch {
	case r.ContentLength < 0:
		httpError(w, http.StatusLengthRequired, "Content-Length is required")
		return
	case r.ContentLength > sl.Size || sl.Size > s.cfg.MaxFileSize:
		httpError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("Content-Length %d is more than the slot's %d bytes (or the limit, %d)", r.ContentLength, sl.Size, s.cfg.MaxFileSize))
		return
	case r.ContentLength != sl.Size:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("Content-Length %d is not the slot's %d bytes", r.ContentLength, sl.Size))
		return
	}
	ctype, msg := putContentType(r.Header.Get("Content-Type"), sl.ContentType)
	if msg != "" {
		httpError(w, http.StatusUnsupportedMediaType, msg)
		return
	}
	deadline := uploadDeadline(sl)
	// The server has no read timeout for bodies (uploads may be large);
	// this one bounds each upload by its slot.
	http.NewResponseController(w).SetReadDeadline(deadline)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, sl.Size)}
	err = s.cfg.Store.Put(ctx, fileKey(id), body, sl.Size, Meta{ContentType: ctype, Filename: sl.Filename, Name: sl.Name})
	switch {
	case errors.Is(err, ErrExists):
		httpError(w, http.StatusConflict, "this slot has been used; request a new one")
	case err != nil && body.err != nil:
		s.log.Debug("upload aborted", "id", id, "error", body.err)
		httpError(w, http.StatusBadRequest, "the upload did not arrive whole: "+body.err.Error())
	case err != nil && ctx.Err() != nil:
		httpError(w, http.StatusRequestTimeout, "the upload took too long")
	case err != nil:
		s.log.Error("cannot store an upload", "id", id, "error", err)
		httpError(w, http.StatusInternalServerError, "the file could not be stored")
	default:
		s.log.Info("file uploaded", "id", id, "size", sl.Size, "type", ctype)
		w.WriteHeader(http.StatusCreated)
	}
}

// putContentType checks a PUT's Content-Type against the slot's and
// returns the type to store, or why it is refused.
func putContentType(got, announced string) (string, string) {
	if got == "" {
		if announced != "" {
			return "", "Content-Type is required: the slot is for " + announced
		}
		return "application/octet-stream", ""
	}
	mt, params, err := mime.ParseMediaType(got)
	if err != nil || !strings.Contains(mt, "/") {
		return "", "Content-Type " + strconv.Quote(got) + " is not a media type"
	}
	if announced != "" && !sameMediaType(mt, params, announced) {
		return "", "Content-Type " + strconv.Quote(got) + " is not the slot's " + strconv.Quote(announced)
	}
	return mime.FormatMediaType(mt, params), ""
}

// sameMediaType compares a parsed media type with another, ignoring the
// case of parameter values ("charset=UTF-8" is "charset=utf-8").
func sameMediaType(mt string, params map[string]string, other string) bool {
	omt, oparams, err := mime.ParseMediaType(other)
	if err != nil || mt != omt || len(params) != len(oparams) {
		return false
	}
	for k, v := range params {
		if ov, ok := oparams[k]; !ok || !strings.EqualFold(v, ov) {
			return false
		}
	}
	return true
}

// bodyReader remembers the error reading a request body, to tell a
// client's broken upload from a failing store.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, id, name string) {
	obj, err := s.cfg.Store.Open(r.Context(), fileKey(id))
	if errors.Is(err, ErrNotFound) {
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	if err != nil {
		s.log.Error("cannot read an upload", "id", id, "error", err)
		httpError(w, http.StatusInternalServerError, "the file cannot be read")
		return
	}
	defer obj.Close()
	info := obj.Info()
	now := s.cfg.Now()
	// The name is part of the address: a file is served under the URL
	// its slot gave and no other.
	if info.Meta.Name != name || s.expired(info.Modified, now) {
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	ctype := info.Meta.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	disp := "attachment"
	if inline(mt) {
		disp = "inline"
	}
	filename := info.Meta.Filename
	if filename == "" {
		filename = info.Meta.Name
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": filename}))
	// Nothing in a download may run as a page of this origin.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("ETag", `"`+id+`"`)
	maxAge := 365 * 24 * time.Hour
	if s.cfg.Expire > 0 {
		maxAge = info.Modified.Add(s.cfg.Expire).Sub(now)
	}
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds())))
	http.ServeContent(w, r, "", info.Modified, obj)
}
