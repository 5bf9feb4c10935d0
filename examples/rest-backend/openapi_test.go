package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	httpbackend "github.com/koi-im/koi/plugins/http"
	"github.com/koi-im/koi/sdk/sdktest"
)

// loadContract loads and checks plugins/http/openapi.yaml, with a
// relative server so that it routes requests to any test service.
func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(filepath.Dir(here), "..", "..", "plugins", "http", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: "/"}}
	return doc
}

// coverage notes which operations of the document requests exercised.
type coverage struct {
	mu   sync.Mutex
	seen map[string]bool // "METHOD /path" of the document
}

func (c *coverage) note(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[op] = true
}

// validator checks every request reaching one test service, and its
// answer, against the contract.
type validator struct {
	t      *testing.T
	router routers.Router
	next   http.Handler
	opts   *openapi3filter.Options
	cov    *coverage
}

func (v *validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_admin/") {
		v.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		v.t.Errorf("%s %s: reading the body: %v", r.Method, r.URL, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		v.t.Errorf("%s %s: not in openapi.yaml: %v", r.Method, r.URL, err)
		v.next.ServeHTTP(w, r)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: v.opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		v.t.Errorf("request %s %s does not match openapi.yaml: %v", r.Method, r.URL, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: v.opts}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		v.t.Errorf("answer %d to %s %s does not match openapi.yaml: %v", rec.Code, r.Method, r.URL, err)
	}
	v.cov.note(route.Method + " " + route.Path)

	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// TestOpenAPIContract runs the conformance kit through a validator: every
// request the plugin makes and every answer of the reference service must
// match plugins/http/openapi.yaml, and every operation of the document
// must be exercised.
func TestOpenAPIContract(t *testing.T) {
	doc := loadContract(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	cov := &coverage{seen: map[string]bool{}}
	sdktest.Run(t, httpbackend.New, sdktest.Options{
		NewConfig: func(t *testing.T) []byte {
			srv, _ := startService(t, signedOptions())
			ts := httptest.NewServer(&validator{t: t, router: router, next: srv, opts: opts, cov: cov})
			t.Cleanup(ts.Close)
			return pluginConfig(t, ts.URL, nil)
		},
		LargeRoster: 50,
	})

	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !cov.seen[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("operations of openapi.yaml no request exercised: %q", missing)
	}
}
