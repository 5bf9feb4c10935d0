package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Passwords are never stored: CreateUser and SetPassword keep only SCRAM
// credentials, for SHA-1 and SHA-256, and CheckPassword verifies against the
// SHA-256 ones.

// scramHashes are the credentials kept for every account.
func scramHashes() []string { return []string{sdk.HashSHA1, sdk.HashSHA256} }

// UserExists reports whether the account exists.
func (s *Store) UserExists(ctx context.Context, host, user string) (bool, error) {
	const op = "auth.UserExists"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return false, s.fail(op, err)
	}
	var n int
	err := s.scanOne(ctx, nil, "SELECT COUNT(*) FROM koi_users WHERE host = ? AND username = ?", []any{host, user}, &n)
	if err != nil {
		return false, s.fail(op, err)
	}
	return n > 0, nil
}

// CheckPassword verifies password against the stored SHA-256 credentials;
// an unknown user is a wrong password, not an error.
func (s *Store) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	c, err := s.SCRAMCredentials(ctx, host, user, sdk.HashSHA256)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth.CheckPassword: %w", err)
	}
	return sdk.CheckSCRAMPassword(password, sdk.HashSHA256, c), nil
}

// SCRAMCredentials returns the stored credentials for hash, or
// sdk.ErrNotFound for an unknown user.
func (s *Store) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	const op = "auth.SCRAMCredentials"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return sdk.SCRAMCredentials{}, s.fail(op, err)
	}
	if !slices.Contains(scramHashes(), hash) {
		return sdk.SCRAMCredentials{}, s.fail(op, fmt.Errorf("%w: unknown SCRAM hash %q", sdk.ErrInvalid, hash))
	}
	var c sdk.SCRAMCredentials
	err := s.scanOne(ctx, nil,
		"SELECT salt, iterations, stored_key, server_key FROM koi_scram_credentials WHERE host = ? AND username = ? AND hash = ?",
		[]any{host, user, hash}, &c.Salt, &c.Iterations, &c.StoredKey, &c.ServerKey)
	if err != nil {
		return sdk.SCRAMCredentials{}, s.fail(op, err)
	}
	return c, nil
}

// CreateUser creates the account with credentials for password, or returns
// sdk.ErrExists.
func (s *Store) CreateUser(ctx context.Context, host, user, password string) error {
	const op = "auth.CreateUser"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	creds, err := s.deriveAll(password)
	if err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, "INSERT INTO koi_users (host, username, created_at) VALUES (?, ?, ?)",
			host, user, time.Now().Unix()); err != nil {
			return err
		}
		return s.insertCredentials(ctx, tx, host, user, creds)
	})
}

// SetPassword replaces the account's credentials, or returns
// sdk.ErrNotFound.
func (s *Store) SetPassword(ctx context.Context, host, user, password string) error {
	const op = "auth.SetPassword"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	creds, err := s.deriveAll(password)
	if err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if err := s.userExistsTx(ctx, tx, host, user); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_scram_credentials WHERE host = ? AND username = ?", host, user); err != nil {
			return err
		}
		return s.insertCredentials(ctx, tx, host, user, creds)
	})
}

// DeleteUser removes the account and its credentials, or returns
// sdk.ErrNotFound. The core deletes the user's data in other features.
func (s *Store) DeleteUser(ctx context.Context, host, user string) error {
	const op = "auth.DeleteUser"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_scram_credentials WHERE host = ? AND username = ?", host, user); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, "DELETE FROM koi_users WHERE host = ? AND username = ?", host, user)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return sdk.ErrNotFound
		}
		return nil
	})
}

// ListUsers returns the local parts of host's accounts in byte order.
func (s *Store) ListUsers(ctx context.Context, host string) ([]string, error) {
	const op = "auth.ListUsers"
	if err := checkKey("host", host); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT username FROM koi_users WHERE host = ?", host)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	users := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, s.fail(op, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	// Sorted here, not by ORDER BY: a server collation may not be byte order.
	slices.Sort(users)
	return users, nil
}

// deriveAll computes credentials for every hash before any transaction
// starts, so PBKDF2's cost is not paid while holding a lock.
func (s *Store) deriveAll(password string) (map[string]sdk.SCRAMCredentials, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", sdk.ErrInvalid)
	}
	out := make(map[string]sdk.SCRAMCredentials, len(scramHashes()))
	for _, h := range scramHashes() {
		c, err := sdk.NewSCRAMCredentials(password, h, s.iterations)
		if err != nil {
			return nil, err
		}
		out[h] = c
	}
	return out, nil
}

func (s *Store) insertCredentials(ctx context.Context, tx *sql.Tx, host, user string, creds map[string]sdk.SCRAMCredentials) error {
	for _, h := range scramHashes() {
		c := creds[h]
		if _, err := s.exec(ctx, tx,
			"INSERT INTO koi_scram_credentials (host, username, hash, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
			host, user, h, c.Salt, c.Iterations, c.StoredKey, c.ServerKey); err != nil {
			return err
		}
	}
	return nil
}

// userExistsTx returns sdk.ErrNotFound unless the account exists.
func (s *Store) userExistsTx(ctx context.Context, tx *sql.Tx, host, user string) error {
	var n int
	if err := s.scanOne(ctx, tx, "SELECT COUNT(*) FROM koi_users WHERE host = ? AND username = ?", []any{host, user}, &n); err != nil {
		return err
	}
	if n == 0 {
		return sdk.ErrNotFound
	}
	return nil
}
