package httpbackend

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/koi-im/koi/sdk"
)

// Headers of HMAC-signed requests (see README).
const (
	headerTimestamp = "X-Koi-Timestamp"
	headerSignature = "X-Koi-Signature"
)

// maxBackoff caps one wait between retries.
const maxBackoff = 2 * time.Second

// call is one request to the service.
type call struct {
	method string
	// path is relative to base_url, each segment already escaped.
	path  string
	query url.Values
	// At most one body: a form (the auth contract) or a value sent as JSON.
	form url.Values
	json any
	// out, if set, receives a 2xx answer's JSON body.
	out any
	// parse, if set, reads a 2xx answer's body instead; an error means
	// a malformed answer.
	parse func(body []byte) error
	// idempotent calls are retried after a temporary failure: reads, and
	// writes the service applies at most once whatever the repeats (the
	// archive's appends, keyed by stanza id).
	idempotent bool
}

// response is the service's answer to a call that reached it.
type response struct {
	status int
	body   []byte
}

// errCallerGone marks a call abandoned by koi (its deadline or a
// cancellation): it says nothing about the service's health, so the
// breaker ignores it.
var errCallerGone = errors.New("the call was abandoned")

// errTooLarge marks an answer over max_response_bytes. The service did
// answer, and would answer the same again: it is neither retried nor
// held against the service's health, or one user's large archive page
// would open the breaker for every feature and host.
var errTooLarge = errors.New("raise max_response_bytes if the service's answers are this large")

// client calls the service: one http.Client, so connections are reused,
// behind one circuit breaker.
type client struct {
	set     Settings
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[response]
	log     sdk.Logger
	// now and sleep are replaced in tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newClient(set Settings, log sdk.Logger) (*client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// koi calls one service from many goroutines: keep enough idle
	// connections to it instead of the default two.
	tr.MaxIdleConnsPerHost = 64
	if set.CAFile != "" {
		pem, err := os.ReadFile(set.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: config: ca_file: %w", sdk.ErrInvalid, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: config: ca_file %s holds no PEM certificate", sdk.ErrInvalid, set.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &client{
		set: set,
		http: &http.Client{
			Transport: tr,
			// A redirect would re-send the request (and its credentials)
			// somewhere the operator did not configure, with a signature
			// made for the first target: a 3xx is an answer like any other.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:   log,
		now:   time.Now,
		sleep: sleepCtx,
	}
	c.breaker = gobreaker.NewCircuitBreaker[response](gobreaker.Settings{
		Name:        set.BaseURL.Host,
		MaxRequests: 1, // one probe when half-open
		Timeout:     set.BreakerCooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= uint32(set.BreakerFailures)
		},
		// Only an unhealthy service counts against it; a 404 or a 409 is
		// a healthy answer.
		IsSuccessful: func(err error) bool { return !errors.Is(err, sdk.ErrUnavailable) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errCallerGone) || errors.Is(err, errTooLarge) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("circuit breaker", "service", name, "from", from.String(), "to", to.String())
		},
	})
	return c, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// do sends the call, retrying an idempotent one after a temporary
// failure, and returns the answer of any status the service gave. Errors
// wrap sdk.ErrUnavailable when the service could not be asked or did not
// answer properly (a 5xx, a timeout, a malformed or oversized answer, the
// breaker open).
func (c *client) do(ctx context.Context, cl call) (response, error) {
	body, ctype, err := encodeBody(cl)
	if err != nil {
		return response{}, err
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.breaker.Execute(func() (response, error) { return c.once(ctx, cl, body, ctype) })
		switch {
		case err == nil:
			return resp, nil
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			// Fail fast: the service is down, and retrying would only
			// hammer it while it recovers.
			return response{}, fmt.Errorf("%w: %s %s: circuit breaker open after repeated failures", sdk.ErrUnavailable, cl.method, cl.path)
		case errors.Is(err, errCallerGone), errors.Is(err, errTooLarge), !errors.Is(err, sdk.ErrUnavailable),
			!cl.idempotent, attempt >= c.set.Retries:
			return response{}, err
		}
		c.log.Debug("retrying", "method", cl.method, "path", cl.path, "attempt", attempt+1, "error", err)
		if serr := c.sleep(ctx, c.backoff(attempt)); serr != nil {
			return response{}, fmt.Errorf("%w (%w) while waiting to retry after: %w", serr, errCallerGone, err)
		}
	}
}

// backoff is the wait before retry attempt+1: exponential, with jitter
// so that many callers failing together do not retry together.
func (c *client) backoff(attempt int) time.Duration {
	d := min(c.set.RetryBackoff<<attempt, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func encodeBody(cl call) ([]byte, string, error) {
	switch {
	case cl.form != nil:
		return []byte(cl.form.Encode()), "application/x-www-form-urlencoded", nil
	case cl.json != nil:
		// Without HTML escaping: archived stanzas are XML, and escaping
		// every < and > as \u003c made an append body about a quarter
		// larger and slower to write and to read.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.json); err != nil {
			return nil, "", fmt.Errorf("%w: encoding the request: %w", sdk.ErrInvalid, err)
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n")), "application/json", nil
	}
	return nil, "", nil
}

// once makes one attempt.
func (c *client) once(ctx context.Context, cl call, body []byte, ctype string) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, fmt.Errorf("%w: %s %s: %w (%w)", sdk.ErrUnavailable, cl.method, cl.path, err, errCallerGone)
	}
	actx, cancel := context.WithTimeout(ctx, c.set.Timeout)
	defer cancel()
	target := c.set.BaseURL.String() + "/" + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, target, rd)
	if err != nil {
		return response{}, fmt.Errorf("%w: building %s %s: %w", sdk.ErrInvalid, cl.method, cl.path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json, text/plain")
	c.authorize(req, body)

	fail := func(format string, args ...any) (response, error) {
		err := fmt.Errorf("%w: %s %s: %w", sdk.ErrUnavailable, cl.method, cl.path, fmt.Errorf(format, args...))
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, errCallerGone)
		}
		return response{}, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return fail("no answer within %s", c.set.Timeout)
		}
		// The url.Error names the full URL, whose query holds the
		// password of an auth call: keep only what went wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fail("%v", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, c.set.MaxResponseBytes+1))
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return fail("no complete answer within %s", c.set.Timeout)
		}
		return fail("reading the answer: %v", err)
	}
	if int64(len(data)) > c.set.MaxResponseBytes {
		return fail("answer larger than max_response_bytes (%d) (%w)", c.set.MaxResponseBytes, errTooLarge)
	}
	resp := response{status: res.StatusCode, body: data}
	switch {
	case res.StatusCode >= 500 && res.StatusCode != http.StatusNotImplemented,
		res.StatusCode == http.StatusTooManyRequests, res.StatusCode == http.StatusRequestTimeout:
		return fail("status %d%s", res.StatusCode, serviceMessage(data))
	case res.StatusCode/100 == 2 && cl.out != nil:
		// Start from zero: json.Unmarshal merges into what an earlier,
		// failed attempt may have left.
		reflect.ValueOf(cl.out).Elem().SetZero()
		if err := json.Unmarshal(data, cl.out); err != nil {
			return fail("malformed JSON answer: %v", err)
		}
	case res.StatusCode/100 == 2 && cl.parse != nil:
		if err := cl.parse(data); err != nil {
			return fail("malformed answer: %v", err)
		}
	}
	return resp, nil
}

// authorize adds the configured credentials: a bearer token or basic
// credentials, and an HMAC signature over method, request target,
// timestamp and body.
func (c *client) authorize(req *http.Request, body []byte) {
	switch {
	case c.set.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.set.Token)
	case c.set.BasicUser != "":
		req.SetBasicAuth(c.set.BasicUser, c.set.BasicPass)
	}
	if len(c.set.HMACSecret) > 0 {
		ts := strconv.FormatInt(c.now().Unix(), 10)
		req.Header.Set(headerTimestamp, ts)
		req.Header.Set(headerSignature, Sign(c.set.HMACSecret, req.Method, req.URL.RequestURI(), ts, body))
	}
}

// Sign returns the hex HMAC-SHA256 with secret of method, request target
// (path and query, as sent), timestamp and body, each followed by a
// newline but the body. Services verify requests with it.
func Sign(secret []byte, method, target, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, method+"\n"+target+"\n"+timestamp+"\n")
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// statusError maps a non-2xx answer of the JSON contract to an sdk error.
func statusError(cl call, r response) error {
	msg := fmt.Sprintf("%s %s: status %d%s", cl.method, cl.path, r.status, serviceMessage(r.body))
	switch r.status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %s", sdk.ErrInvalid, msg)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", sdk.ErrNotFound, msg)
	case http.StatusConflict:
		return fmt.Errorf("%w: %s", sdk.ErrExists, msg)
	case http.StatusForbidden, http.StatusMethodNotAllowed:
		return fmt.Errorf("%w: %s", sdk.ErrReadOnly, msg)
	case http.StatusNotImplemented:
		return fmt.Errorf("%w: %s", errors.ErrUnsupported, msg)
	case http.StatusUnauthorized:
		return fmt.Errorf("the service refused koi's credentials (check token, basic_auth, hmac_secret): %s", msg)
	}
	return errors.New(msg)
}

// serviceMessage quotes the start of an error answer for the log: the
// "error" member of a JSON object, or the text.
func serviceMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	s := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		s = e.Error
	}
	if s == "" {
		return ""
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return ": " + strconv.Quote(s)
}

// jsonCall makes a call of the JSON contract and maps a non-2xx answer
// to an sdk error.
func (c *client) jsonCall(ctx context.Context, cl call) (response, error) {
	r, err := c.do(ctx, cl)
	if err != nil {
		return r, err
	}
	if r.status/100 != 2 {
		return r, statusError(cl, r)
	}
	return r, nil
}
