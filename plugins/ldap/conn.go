package ldapbackend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/sdk"
)

// servers dials the configured directory servers, in order, starting with
// the one that answered last (so that a dead first server costs one
// connect timeout once, not on every dial).
type servers struct {
	s     *Settings
	urls  []*url.URL
	roots *x509.CertPool
	last  atomic.Int32 // index of the server that answered last
}

func newServers(s *Settings) (*servers, error) {
	roots, err := s.tlsRoots()
	if err != nil {
		return nil, fmt.Errorf("%w: ldap backend config: ca_file: %v", sdk.ErrInvalid, err)
	}
	sv := &servers{s: s, roots: roots}
	for _, raw := range s.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: ldap backend config: url: %v", sdk.ErrInvalid, err)
		}
		sv.urls = append(sv.urls, u)
	}
	return sv, nil
}

// dial connects to the first server that answers and, when bindDN is set,
// binds as it. Every step is bounded by the connect timeout and ctx.
func (sv *servers) dial(ctx context.Context, bindDN, bindPassword string) (*ldap.Conn, error) {
	n := len(sv.urls)
	start := int(sv.last.Load())
	var errs []string
	for i := range n {
		idx := (start + i) % n
		c, err := sv.dialOne(ctx, sv.urls[idx], bindDN, bindPassword)
		if err == nil {
			sv.last.Store(int32(idx))
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: directory: %v", sdk.ErrUnavailable, ctx.Err())
		}
		var cfgErr *configError
		if errors.As(err, &cfgErr) {
			// A refused service bind is the same on every server.
			return nil, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", sv.urls[idx].Redacted(), err))
	}
	return nil, fmt.Errorf("%w: no directory server answered: %s", sdk.ErrUnavailable, strings.Join(errs, "; "))
}

// configError is a failure no other server or retry can fix.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return sdk.ErrUnavailable }

func (sv *servers) dialOne(ctx context.Context, u *url.URL, bindDN, bindPassword string) (*ldap.Conn, error) {
	s := sv.s
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	deadline := time.Now().Add(s.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	// The deadline covers the TLS handshake, StartTLS and the service bind:
	// go-ldap bounds neither the StartTLS handshake nor, without a request
	// timeout, a reply that never comes.
	raw.SetDeadline(deadline)
	var nc net.Conn = raw
	tlsCfg := s.tlsConfig(host, sv.roots)
	if u.Scheme == "ldaps" {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		nc = tc
	}
	c := ldap.NewConn(nc, u.Scheme == "ldaps")
	c.Start()
	c.SetTimeout(time.Until(deadline))
	fail := func(err error) (*ldap.Conn, error) {
		c.Close()
		return nil, err
	}
	if s.StartTLS && u.Scheme == "ldap" {
		if err := c.StartTLS(tlsCfg); err != nil {
			return fail(fmt.Errorf("StartTLS: %w", err))
		}
	}
	if bindDN != "" {
		if err := c.Bind(bindDN, bindPassword); err != nil {
			if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
				return fail(&configError{fmt.Sprintf("directory: the service account bind_dn %q was refused: %v", bindDN, err)})
			}
			if ldap.IsErrorAnyOf(err, ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired) {
				return fail(&configError{fmt.Sprintf("directory: binds need TLS: use ldaps:// or start_tls = true (%v)", err)})
			}
			return fail(fmt.Errorf("service bind: %w", err))
		}
	}
	raw.SetDeadline(time.Time{})
	c.SetTimeout(s.Timeout)
	return c, nil
}

// pool keeps up to size connections; at most size are in use at once.
type pool struct {
	dial func(ctx context.Context) (*ldap.Conn, error)
	sem  chan struct{}
	idle chan *ldap.Conn
}

func newPool(size int, dial func(ctx context.Context) (*ldap.Conn, error)) *pool {
	return &pool{dial: dial, sem: make(chan struct{}, size), idle: make(chan *ldap.Conn, size)}
}

// get returns a connection and whether it is a fresh one.
func (p *pool) get(ctx context.Context) (*ldap.Conn, bool, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: directory: all %d connections busy: %v", sdk.ErrUnavailable, cap(p.sem), ctx.Err())
	}
	for {
		select {
		case c := <-p.idle:
			if c.IsClosing() {
				continue
			}
			return c, false, nil
		default:
		}
		break
	}
	c, err := p.dial(ctx)
	if err != nil {
		<-p.sem
		return nil, false, err
	}
	return c, true, nil
}

// put hands c back; a connection that failed is closed instead.
func (p *pool) put(c *ldap.Conn, healthy bool) {
	if healthy && !c.IsClosing() {
		select {
		case p.idle <- c:
			<-p.sem
			return
		default:
		}
	}
	c.Close()
	<-p.sem
}

// with runs fn on a pooled connection. ctx bounds fn: when it ends, the
// connection is closed, which aborts the request in flight. A reused
// connection that turns out dead (the server closed it while idle) is
// replaced by a fresh one, once.
func (p *pool) with(ctx context.Context, fn func(c *ldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, fresh, err := p.get(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err = fn(c)
		aborted := !stop()
		healthy := !aborted && !isConnectionError(err)
		p.put(c, healthy)
		if aborted {
			return fmt.Errorf("%w: directory: %v", sdk.ErrUnavailable, context.Cause(ctx))
		}
		if err != nil && !healthy && !fresh && attempt == 0 && !isTimeout(err) {
			continue
		}
		return err
	}
}

// close closes the idle connections.
func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close()
		default:
			return
		}
	}
}

// isConnectionError reports whether err means the connection is no longer
// usable (network failure, timeout, protocol trouble).
func isConnectionError(err error) bool {
	if err == nil {
		return false
	}
	var le *ldap.Error
	if !errors.As(err, &le) {
		return true
	}
	return le.ResultCode == ldap.ErrorNetwork || le.ResultCode >= ldap.LDAPResultServerDown && le.ResultCode <= ldap.LDAPResultClientLoop ||
		le.ResultCode == ldap.ErrorUnexpectedResponse || le.ResultCode == ldap.ErrorMalformedPacket ||
		le.ResultCode == ldap.ErrorUnexpectedMessage
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "timed out")
}

// mapError turns an LDAP failure into the sdk error koi maps to XMPP: a
// directory that is down, slow, busy or pointing elsewhere is temporary.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sdk.ErrUnavailable) || errors.Is(err, sdk.ErrInvalid) || errors.Is(err, sdk.ErrNotFound) {
		return err
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultReferral:
			return fmt.Errorf("%w: directory %s: the server sent a referral (matched DN %q), which koi does not follow; "+
				"point base_dn (or the url) at the server that holds the entries", sdk.ErrUnavailable, op, le.MatchedDN)
		case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultUnwillingToPerform,
			ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultAdminLimitExceeded, ldap.LDAPResultOther:
			return fmt.Errorf("%w: directory %s: %v", sdk.ErrUnavailable, op, err)
		case ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired:
			return fmt.Errorf("%w: directory %s: the server wants TLS: use ldaps:// or start_tls = true (%v)", sdk.ErrUnavailable, op, err)
		case ldap.LDAPResultNoSuchObject:
			return fmt.Errorf("%w: directory %s: the base DN does not exist on the server (%v)", sdk.ErrUnavailable, op, err)
		}
		if isConnectionError(err) {
			return fmt.Errorf("%w: directory %s: %v", sdk.ErrUnavailable, op, err)
		}
		return fmt.Errorf("directory %s: %w", op, err)
	}
	return fmt.Errorf("%w: directory %s: %v", sdk.ErrUnavailable, op, err)
}
