package main

import (
	"database/sql"
	"errors"
	"net/http"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/koi-im/koi/sdk"
)

// The HTTP auth contract (Prosody's mod_auth_http, MongooseIM's
// ejabberd_auth_http): parameters user, server and pass, in the query of
// a GET or in a form; check_password and user_exists answer 200 "true" or
// "false", register 201 (409 when the user exists), set_password and
// remove_user 204 (404 for an unknown user). Passwords are kept as SCRAM
// keys, never in clear.

func (s *server) authMethod(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeText(w, http.StatusBadRequest, "malformed parameters")
			return
		}
		host, user, pass := r.Form.Get("server"), r.Form.Get("user"), r.Form.Get("pass")
		if host == "" || user == "" {
			writeText(w, http.StatusBadRequest, "user and server are required")
			return
		}
		switch method {
		case "check_password":
			ok, err := s.checkPassword(r, host, user, pass)
			s.answerBool(w, r, ok, err)
		case "user_exists":
			var one int
			err := s.st.db.QueryRowContext(r.Context(), "SELECT 1 FROM users WHERE host = ? AND user = ?", host, user).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				s.answerBool(w, r, false, nil)
				return
			}
			s.answerBool(w, r, true, err)
		case "register":
			s.register(w, r, host, user, pass)
		case "set_password":
			s.setPassword(w, r, host, user, pass)
		case "remove_user":
			s.removeUser(w, r, host, user)
		}
	}
}

func (s *server) answerBool(w http.ResponseWriter, r *http.Request, ok bool, err error) {
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if ok {
		writeText(w, http.StatusOK, "true")
	} else {
		writeText(w, http.StatusOK, "false")
	}
}

func (s *server) checkPassword(r *http.Request, host, user, pass string) (bool, error) {
	var c sdk.SCRAMCredentials
	err := s.st.db.QueryRowContext(r.Context(), "SELECT salt, iterations, stored_key, server_key FROM users WHERE host = ? AND user = ?", host, user).
		Scan(&c.Salt, &c.Iterations, &c.StoredKey, &c.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return sdk.CheckSCRAMPassword(pass, sdk.HashSHA256, c), nil
}

func (s *server) register(w http.ResponseWriter, r *http.Request, host, user, pass string) {
	c, err := sdk.NewSCRAMCredentials(pass, sdk.HashSHA256, sdk.DefaultSCRAMIterations)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	_, err = s.st.db.ExecContext(r.Context(), "INSERT INTO users (host, user, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?)",
		host, user, c.Salt, c.Iterations, c.StoredKey, c.ServerKey)
	var se *sqlite.Error
	switch {
	case errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		writeText(w, http.StatusConflict, "user exists")
	case err != nil:
		s.internal(w, r, err)
	default:
		writeText(w, http.StatusCreated, "created")
	}
}

func (s *server) setPassword(w http.ResponseWriter, r *http.Request, host, user, pass string) {
	c, err := sdk.NewSCRAMCredentials(pass, sdk.HashSHA256, sdk.DefaultSCRAMIterations)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	res, err := s.st.db.ExecContext(r.Context(), "UPDATE users SET salt = ?, iterations = ?, stored_key = ?, server_key = ? WHERE host = ? AND user = ?",
		c.Salt, c.Iterations, c.StoredKey, c.ServerKey, host, user)
	s.answerChange(w, r, res, err)
}

func (s *server) removeUser(w http.ResponseWriter, r *http.Request, host, user string) {
	res, err := s.st.db.ExecContext(r.Context(), "DELETE FROM users WHERE host = ? AND user = ?", host, user)
	s.answerChange(w, r, res, err)
}

// answerChange answers a change of one row: 204, or 404 if there was none.
func (s *server) answerChange(w http.ResponseWriter, r *http.Request, res sql.Result, err error) {
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		writeText(w, http.StatusNotFound, "no such user")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listUsers is koi's extension: the sorted names of a host's accounts.
func (s *server) listUsers(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Query().Get("server")
	if strings.TrimSpace(host) == "" {
		writeError(w, http.StatusBadRequest, "server is required")
		return
	}
	rows, err := s.st.db.QueryContext(r.Context(), "SELECT user FROM users WHERE host = ? ORDER BY user", host)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	defer rows.Close()
	users := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			s.internal(w, r, err)
			return
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, users)
}
