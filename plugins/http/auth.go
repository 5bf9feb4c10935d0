package httpbackend

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// The auth contract of Prosody's mod_auth_http and MongooseIM's
// ejabberd_auth_http: reads are GETs with the parameters in the query,
// writes are POSTs of a form; user, server and pass name the parameters.

// authParams are the parameters of an auth call; pass only when given.
func authParams(host, user string, pass *string) url.Values {
	v := url.Values{"user": {user}, "server": {host}}
	if pass != nil {
		v.Set("pass", *pass)
	}
	return v
}

func checkAccount(host, user string) error {
	switch {
	case host == "":
		return fmt.Errorf("%w: empty host", sdk.ErrInvalid)
	case user == "":
		return fmt.Errorf("%w: empty user name", sdk.ErrInvalid)
	}
	return nil
}

// parseBool reads the "true" or "false" of check_password and
// user_exists; anything else is a malformed answer.
func parseBool(into *bool) func([]byte) error {
	return func(body []byte) error {
		switch s := strings.TrimSpace(string(body)); s {
		case "true":
			*into = true
		case "false":
			*into = false
		default:
			return fmt.Errorf("want \"true\" or \"false\", got %.40q", s)
		}
		return nil
	}
}

// askBool makes a read of the auth contract.
func (b *Backend) askBool(ctx context.Context, method string, params url.Values) (bool, error) {
	var answer bool
	cl := call{method: http.MethodGet, path: method, query: params, parse: parseBool(&answer), idempotent: true}
	r, err := b.c.do(ctx, cl)
	switch {
	case err != nil:
		return false, err
	case r.status == http.StatusOK:
		return answer, nil
	case r.status/100 == 2:
		return false, fmt.Errorf("%w: GET %s: status %d, want 200 with \"true\" or \"false\"", sdk.ErrUnavailable, method, r.status)
	case r.status == http.StatusUnauthorized, r.status == http.StatusForbidden, r.status == http.StatusNotFound:
		// Both variants answer an unknown user or a wrong password so.
		return false, nil
	case r.status/100 == 4 && b.set.AuthStyle == styleEjabberd:
		// ejabberd_auth_http: "anything else will be treated as false".
		return false, nil
	}
	return false, statusError(cl, r)
}

func (b *Backend) UserExists(ctx context.Context, host, user string) (bool, error) {
	if err := checkAccount(host, user); err != nil {
		return false, err
	}
	return b.askBool(ctx, "user_exists", authParams(host, user, nil))
}

func (b *Backend) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	if err := checkAccount(host, user); err != nil {
		return false, err
	}
	return b.askBool(ctx, "check_password", authParams(host, user, &password))
}

// SCRAMCredentials is never called: the contract has no way to fetch
// SCRAM keys, so the plugin does not declare them and koi offers PLAIN.
func (b *Backend) SCRAMCredentials(_ context.Context, host, user, _ string) (sdk.SCRAMCredentials, error) {
	if err := checkAccount(host, user); err != nil {
		return sdk.SCRAMCredentials{}, err
	}
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

// post makes a write of the auth contract: 200, 201 or 204 is success,
// and the other statuses map as in the JSON contract (409 exists, 404
// unknown user, 403 not allowed, 400 invalid). A 501, Prosody's answer
// for a method the service does not implement, is a refusal.
func (b *Backend) post(ctx context.Context, method string, params url.Values) error {
	cl := call{method: http.MethodPost, path: method, form: params}
	r, err := b.c.do(ctx, cl)
	switch {
	case err != nil:
		return err
	case r.status/100 == 2:
		return nil
	case r.status == http.StatusNotImplemented:
		return fmt.Errorf("%w: the service does not implement %s (501)", sdk.ErrReadOnly, method)
	}
	return statusError(cl, r)
}

func (b *Backend) CreateUser(ctx context.Context, host, user, password string) error {
	if err := checkAccount(host, user); err != nil {
		return err
	}
	return b.post(ctx, "register", authParams(host, user, &password))
}

func (b *Backend) SetPassword(ctx context.Context, host, user, password string) error {
	if err := checkAccount(host, user); err != nil {
		return err
	}
	return b.post(ctx, "set_password", authParams(host, user, &password))
}

func (b *Backend) DeleteUser(ctx context.Context, host, user string) error {
	if err := checkAccount(host, user); err != nil {
		return err
	}
	return b.post(ctx, "remove_user", authParams(host, user, nil))
}

// ListUsers is koi's extension of the contract (neither variant lists
// accounts): GET {base}/list_users?server= answers a JSON array of names.
func (b *Backend) ListUsers(ctx context.Context, host string) ([]string, error) {
	if host == "" {
		return nil, fmt.Errorf("%w: empty host", sdk.ErrInvalid)
	}
	var users []string
	_, err := b.c.jsonCall(ctx, call{
		method: http.MethodGet, path: "list_users", query: url.Values{"server": {host}},
		out: &users, idempotent: true,
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(users)
	return users, nil
}
