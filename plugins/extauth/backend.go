package extauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/koi-im/koi/sdk"
)

// Backend checks (and, if Settings.Writable, changes) accounts through an
// ejabberd external authentication program.
type Backend struct {
	pool     *pool
	writable bool
}

var (
	_ sdk.Backend   = (*Backend)(nil)
	_ sdk.Auth      = (*Backend)(nil)
	_ sdk.AuthAdmin = (*Backend)(nil)
	_ sdk.Pinger    = (*Backend)(nil)
)

// New is the plugin's sdk.Factory: it reads the config block and starts
// the programs.
func New(_ context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return Open(s, log)
}

// Open starts the programs of s (already checked by ParseConfig or
// Settings.Check).
func Open(s Settings, log sdk.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := newPool(s, log)
	if err != nil {
		return nil, fmt.Errorf("extauth: %w", err)
	}
	log.Info("extauth backend ready", "program", s.Program, "instances", s.Instances,
		"timeout", s.Timeout.String(), "writable", s.Writable)
	return &Backend{pool: p, writable: s.Writable}, nil
}

// Capabilities implements sdk.Backend. The protocol carries plain
// passwords, so there are no SCRAM keys: koi offers PLAIN, over TLS.
func (b *Backend) Capabilities() sdk.Capabilities { return capabilities(b.writable) }

func capabilities(writable bool) sdk.Capabilities {
	access := sdk.AccessRead
	if writable {
		access = sdk.AccessReadWrite
	}
	return sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: access}}
}

// Validate is the plugin's sdk.Validator: the config checked (the program
// must exist and be executable) without starting the program.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return sdk.Validation{}, err
	}
	return sdk.Validation{Capabilities: capabilities(s.Writable)}, nil
}

// Close implements sdk.Backend: it closes the programs' stdin, which ends
// them, after the calls in flight.
func (b *Backend) Close() error {
	b.pool.shutdown()
	return nil
}

// Ping implements sdk.Pinger without a request (the protocol has no
// no-op): it fails when every program's last start or request failed, so
// that koi reports the plugin unhealthy.
func (b *Backend) Ping(context.Context) error { return b.pool.healthy() }

// ask sends one request and returns the program's 1 (true) or 0 (false).
func (b *Backend) ask(ctx context.Context, op, host, user string, password ...string) (bool, error) {
	frame, err := encodeRequest(op, user, host, password...)
	if err != nil {
		return false, err
	}
	return b.pool.call(ctx, frame)
}

// UserExists implements sdk.Auth with isuser.
func (b *Backend) UserExists(ctx context.Context, host, user string) (bool, error) {
	return b.ask(ctx, opIsUser, host, user)
}

// CheckPassword implements sdk.Auth with auth. An empty password is
// refused here: many extauth programs check against LDAP, where a bind
// with an empty password is anonymous and succeeds.
func (b *Backend) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	if password == "" {
		if _, err := encodeRequest(opAuth, user, host); err != nil {
			return false, err
		}
		return false, nil
	}
	return b.ask(ctx, opAuth, host, user, password)
}

// SCRAMCredentials implements sdk.Auth. Never called: SCRAM is not
// declared.
func (b *Backend) SCRAMCredentials(context.Context, string, string, string) (sdk.SCRAMCredentials, error) {
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

// The protocol's writes answer only 0 or 1; a 0 is explained by asking
// isuser afterwards, which gives the error the sdk.AuthAdmin contract
// wants (ErrExists, ErrNotFound). A 0 the account's state does not
// explain means the program refused the change: sdk.ErrReadOnly, which
// koi answers with not-allowed, as ejabberd does.

// CreateUser implements sdk.AuthAdmin with tryregister.
func (b *Backend) CreateUser(ctx context.Context, host, user, password string) error {
	if err := b.checkWrite(password, true); err != nil {
		return err
	}
	ok, err := b.ask(ctx, opTryRegister, host, user, password)
	if err != nil || ok {
		return err
	}
	return b.explain(ctx, host, user, opTryRegister, true, sdk.ErrExists)
}

// SetPassword implements sdk.AuthAdmin with setpass.
func (b *Backend) SetPassword(ctx context.Context, host, user, password string) error {
	if err := b.checkWrite(password, true); err != nil {
		return err
	}
	ok, err := b.ask(ctx, opSetPass, host, user, password)
	if err != nil || ok {
		return err
	}
	return b.explain(ctx, host, user, opSetPass, false, sdk.ErrNotFound)
}

// DeleteUser implements sdk.AuthAdmin with removeuser (koi never sends
// removeuser3: it checks the password itself before deleting).
func (b *Backend) DeleteUser(ctx context.Context, host, user string) error {
	if err := b.checkWrite("", false); err != nil {
		return err
	}
	ok, err := b.ask(ctx, opRemoveUser, host, user)
	if err != nil || ok {
		return err
	}
	return b.explain(ctx, host, user, opRemoveUser, false, sdk.ErrNotFound)
}

// ListUsers implements sdk.AuthAdmin: the protocol cannot list accounts.
func (b *Backend) ListUsers(context.Context, string) ([]string, error) {
	if err := b.checkWrite("", false); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the ejabberd extauth protocol cannot list users: %w", errors.ErrUnsupported)
}

func (b *Backend) checkWrite(password string, hasPassword bool) error {
	if !b.writable {
		return fmt.Errorf("%w: extauth backend without writable = true", sdk.ErrReadOnly)
	}
	if hasPassword && password == "" {
		return fmt.Errorf("%w: empty password", sdk.ErrInvalid)
	}
	return nil
}

// explain turns a 0 from op into an error: errIf if the user's existence
// is what makes op fail (existing for tryregister, missing for the
// others), sdk.ErrReadOnly otherwise.
func (b *Backend) explain(ctx context.Context, host, user, op string, existing bool, errIf error) error {
	exists, err := b.UserExists(ctx, host, user)
	switch {
	case err != nil:
		return fmt.Errorf("extauth program refused %s; isuser: %w", op, err)
	case exists == existing:
		return fmt.Errorf("extauth %s %s@%s: %w", op, user, host, errIf)
	}
	return fmt.Errorf("%w: the extauth program refused %s for %s@%s", sdk.ErrReadOnly, op, user, host)
}
