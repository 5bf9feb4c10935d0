package ldapbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/sdk"
)

// Directory is the ldap backend: read-only auth, shared roster and vCards
// from an LDAP directory.
type Directory struct {
	s      Settings
	log    sdk.Logger
	search *pool // bound as the service account (or anonymous)
	binds  *pool // anonymous until a user binds on them; never searched on
	roster *sharedRoster
}

var (
	_ sdk.Backend = (*Directory)(nil)
	_ sdk.Pinger  = (*Directory)(nil)
	_ sdk.Auth    = (*Directory)(nil)
	_ sdk.Roster  = (*Directory)(nil)
	_ sdk.VCard   = (*Directory)(nil)
)

// New is the plugin's sdk.Factory.
func New(ctx context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return Open(ctx, s, log)
}

// Open builds a Directory for s and checks that the directory answers. A
// directory that is down at start is not an error (koi starts, logins fail
// with a temporary error until it is back); a refused service account is.
func Open(ctx context.Context, s Settings, log sdk.Logger) (*Directory, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sv, err := newServers(&s)
	if err != nil {
		return nil, err
	}
	d := &Directory{s: s, log: log}
	d.search = newPool(s.PoolSize, func(ctx context.Context) (*ldap.Conn, error) {
		return sv.dial(ctx, s.BindDN, s.BindPassword)
	})
	d.binds = newPool(s.PoolSize, func(ctx context.Context) (*ldap.Conn, error) {
		return sv.dial(ctx, "", "")
	})
	d.roster = newSharedRoster(d)
	if s.InsecureSkipVerify {
		log.Warn("TLS certificate checks are off (insecure_skip_verify): anyone between koi and the directory can read passwords")
	}
	for _, u := range s.URLs {
		if strings.HasPrefix(u, "ldap://") && !s.StartTLS {
			log.Warn("passwords go to the directory in clear text (allow_plaintext)", "url", u)
		}
	}
	for _, w := range s.adPitfalls() {
		log.Warn("config: " + w.String())
	}
	mode := "search then bind"
	if s.UserDNTemplate != "" {
		mode = "direct bind as " + s.UserDNTemplate
	}
	log.Info("ldap backend configured", "urls", strings.Join(s.URLs, " "), "base_dn", s.BaseDN,
		"auth", mode, "required_group", s.RequiredGroup, "membership", s.GroupMembership,
		"shared_groups", len(s.SharedGroups))
	if err := d.Ping(ctx); err != nil {
		var cfgErr *configError
		if errors.As(err, &cfgErr) {
			d.Close()
			return nil, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
		}
		log.Warn("the directory does not answer yet; logins fail until it does", "error", err)
	}
	return d, nil
}

// Capabilities implements sdk.Backend: everything is read-only, and the
// roster is served only when there are shared groups to build it from.
func (d *Directory) Capabilities() sdk.Capabilities { return d.s.capabilities() }

// Close implements sdk.Backend.
func (d *Directory) Close() error {
	d.search.close()
	d.binds.close()
	return nil
}

// Ping implements sdk.Pinger: the service account can read base_dn.
func (d *Directory) Ping(ctx context.Context) error {
	req := ldap.NewSearchRequest(d.s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil)
	err := d.search.with(ctx, func(c *ldap.Conn) error {
		_, err := c.Search(req)
		return err
	})
	return mapError("ping", err)
}

// UserExists implements sdk.Auth. A disabled account exists (its name
// stays taken, so no later backend in an auth chain can claim it); it
// just cannot log in.
func (d *Directory) UserExists(ctx context.Context, host, name string) (bool, error) {
	if err := checkNames(host, name); err != nil {
		return false, err
	}
	_, ok, err := d.lookup(ctx, name)
	return ok, err
}

// CheckPassword implements sdk.Auth: find the user (which checks the
// group rule), refuse disabled accounts, then bind as the user on a
// connection that is never used for searches.
func (d *Directory) CheckPassword(ctx context.Context, host, name, password string) (bool, error) {
	if err := checkNames(host, name); err != nil {
		return false, err
	}
	// An empty password would be an unauthenticated bind, which succeeds
	// (RFC 4513 §5.1.2); a NUL cannot be in a directory password.
	if password == "" || strings.IndexByte(password, 0) >= 0 {
		return false, nil
	}
	u, ok, err := d.lookup(ctx, name)
	if err != nil || !ok {
		return false, err
	}
	if u.disabled {
		d.log.Info("login refused: the account is disabled in the directory", "user", name, "dn", u.dn)
		return false, nil
	}
	err = d.binds.with(ctx, func(c *ldap.Conn) error { return c.Bind(d.bindName(u), password) })
	switch {
	case err == nil:
		return true, nil
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.ErrorEmptyPassword):
		return false, nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform):
		// Some directories refuse binds of locked or expiring accounts so.
		d.log.Info("login refused by the directory", "user", name, "error", err)
		return false, nil
	}
	return false, mapError("bind", err)
}

// checkNames refuses what no account can have: an empty host or name.
func checkNames(host, name string) error {
	if host == "" || name == "" {
		return fmt.Errorf("%w: empty host or user name", sdk.ErrInvalid)
	}
	return nil
}

// SCRAMCredentials implements sdk.Auth. A directory hands out no password
// material, so koi never calls it (Capabilities says no SCRAM).
func (d *Directory) SCRAMCredentials(context.Context, string, string, string) (sdk.SCRAMCredentials, error) {
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

// splitOwner returns the local part and the domain of a bare JID.
func splitOwner(owner string) (local, host string, ok bool) {
	i := strings.IndexByte(owner, '@')
	if i <= 0 || i == len(owner)-1 {
		return "", "", false
	}
	return owner[:i], owner[i+1:], true
}
