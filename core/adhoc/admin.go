package adhoc

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// The service administration commands (XEP-0133) koi serves, on the
// host's accounts: the ones Prosody's mod_admin_adhoc offers for
// accounts, sessions and announcements.
const nsAdmin = "http://jabber.org/protocol/admin"

// Users are the host's accounts, as the admin API changes them.
type Users interface {
	// ListUsers returns a host's accounts and a note on what could not
	// be listed ("" when everything was).
	ListUsers(ctx context.Context, host string) (users []string, note string, err error)
	UserExists(ctx context.Context, account jid.JID) (bool, error)
	CreateUser(ctx context.Context, account jid.JID, password string) error
	// SetPassword also revokes the account's FAST tokens.
	SetPassword(ctx context.Context, account jid.JID, password string) error
	// DeleteUser deletes the account with its data and ends its sessions.
	DeleteUser(ctx context.Context, account jid.JID) error
}

// Online is who is connected.
type Online interface {
	// OnlineJIDs returns the full JIDs of host's sessions, sorted.
	OnlineJIDs(host string) []string
	// Kick ends a session with a stream error; false if there is none.
	Kick(full jid.JID, text string) bool
	// Broadcast sends el to every available session of host and
	// returns how many got it.
	Broadcast(host string, el *xmlstream.Element) int
}

// maxListed bounds the JIDs a list command returns.
const maxListed = 1000

func (s *Service) adminCommands() []*command {
	accountForm := func(title, instructions string, fields ...dataform.Field) func(context.Context, string) *xmlstream.Element {
		return func(context.Context, string) *xmlstream.Element {
			return dataform.Build("form", nsAdmin, title, instructions, fields)
		}
	}
	pw := func(v, label string) dataform.Field {
		return dataform.Field{Var: v, Type: "text-private", Label: label, Required: true}
	}
	account := dataform.Field{Var: "accountjid", Type: "jid-single", Label: "The account's JID", Required: true}
	accounts := dataform.Field{Var: "accountjids", Type: "jid-multi", Label: "The accounts' JIDs", Required: true}
	maxItems := dataform.Field{Var: "max_items", Type: "list-single", Label: "At most", Options: dataform.Choices("25", "50", "75", "100", "150", "200", "none"), Values: []string{"100"}}
	return []*command{{
		node: nsAdmin + "#add-user", name: "Add a user",
		form: accountForm("Add a user", "The new account's JID and its password.", account, pw("password", "Password"), pw("password-verify", "Password again")),
		run:  s.addUser,
	}, {
		node: nsAdmin + "#delete-user", name: "Delete users",
		form: accountForm("Delete users", "The accounts to delete, with everything they keep on the server.", accounts),
		run:  s.deleteUsers,
	}, {
		node: nsAdmin + "#change-user-password", name: "Change a user's password",
		form: accountForm("Change a user's password", "", account, pw("password", "New password")),
		run:  s.changePassword,
	}, {
		node: nsAdmin + "#end-user-session", name: "End users' sessions",
		form: accountForm("End users' sessions", "A bare JID ends every session of the account; a full JID that one.", accounts),
		run:  s.endSessions,
	}, {
		node: nsAdmin + "#get-registered-users-num", name: "Count the registered users",
		run: s.registeredNum,
	}, {
		node: nsAdmin + "#get-registered-users-list", name: "List the registered users",
		form: accountForm("List the registered users", "", maxItems),
		run:  s.registeredList,
	}, {
		node: nsAdmin + "#get-online-users-num", name: "Count the online users",
		run: s.onlineNum,
	}, {
		node: nsAdmin + "#get-online-users-list", name: "List the online users",
		form: accountForm("List the online users", "", maxItems),
		run:  s.onlineList,
	}, {
		node: nsAdmin + "#announce", name: "Send an announcement to online users",
		form: accountForm("Send an announcement to online users", "Every available session of this host gets it as a headline message.",
			dataform.Field{Var: "subject", Type: "text-single", Label: "Subject"},
			dataform.Field{Var: "announcement", Type: "text-multi", Label: "Announcement", Required: true}),
		run: s.announce,
	}}
}

func (s *Service) addUser(ctx context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	j, serr := accountJID(f.Value("accountjid"), c.host)
	if serr != nil {
		return result{}, serr
	}
	p := f.Value("password")
	switch {
	case p == "":
		return result{}, stanza.ErrNotAcceptable.WithText("an empty password")
	case p != f.Value("password-verify"):
		return result{}, stanza.ErrNotAcceptable.WithText("the passwords differ")
	}
	if err := s.cfg.Users.CreateUser(ctx, j, p); err != nil {
		return result{}, modules.BackendError(err)
	}
	return result{note: "Account " + j.String() + " created."}, nil
}

func (s *Service) deleteUsers(ctx context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	js, serr := accountJIDs(f.Fields["accountjids"], c.host)
	if serr != nil {
		return result{}, serr
	}
	var done []string
	for _, j := range js {
		if err := s.cfg.Users.DeleteUser(ctx, j.Bare()); err != nil {
			return result{}, modules.BackendError(err).WithText(fmt.Sprintf("deleting %s: %v (deleted before it: %s)", j.Bare(), err, list(done)))
		}
		done = append(done, j.Bare().String())
	}
	return result{note: "Deleted: " + list(done) + "."}, nil
}

func (s *Service) changePassword(ctx context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	j, serr := accountJID(f.Value("accountjid"), c.host)
	if serr != nil {
		return result{}, serr
	}
	if f.Value("password") == "" {
		return result{}, stanza.ErrNotAcceptable.WithText("an empty password")
	}
	if ok, err := s.cfg.Users.UserExists(ctx, j.Bare()); err != nil || !ok {
		if err == nil {
			err = sdk.ErrNotFound
		}
		return result{}, modules.BackendError(err)
	}
	if err := s.cfg.Users.SetPassword(ctx, j.Bare(), f.Value("password")); err != nil {
		return result{}, modules.BackendError(err)
	}
	return result{note: "The password of " + j.Bare().String() + " is changed."}, nil
}

func (s *Service) endSessions(_ context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	js, serr := accountJIDs(f.Fields["accountjids"], c.host)
	if serr != nil {
		return result{}, serr
	}
	ended := 0
	for _, j := range js {
		for _, full := range s.cfg.Online.OnlineJIDs(c.host) {
			fj, err := jid.Parse(full)
			if err != nil || fj.Bare() != j.Bare() || (j.Resource() != "" && fj != j) {
				continue
			}
			if s.cfg.Online.Kick(fj, "ended by an admin") {
				ended++
			}
		}
	}
	return result{note: fmt.Sprintf("%d sessions ended.", ended)}, nil
}

func (s *Service) registered(ctx context.Context, host string) ([]string, string, *stanza.Error) {
	users, note, err := s.cfg.Users.ListUsers(ctx, host)
	if err != nil {
		return nil, "", modules.BackendError(err)
	}
	return users, note, nil
}

func (s *Service) registeredNum(ctx context.Context, c call, _ *dataform.Form) (result, *stanza.Error) {
	users, note, serr := s.registered(ctx, c.host)
	if serr != nil {
		return result{}, serr
	}
	return result{note: note, form: dataform.Build("result", nsAdmin, "", "", []dataform.Field{
		{Var: "registeredusersnum", Label: "Registered users", Values: []string{strconv.Itoa(len(users))}},
	})}, nil
}

func (s *Service) registeredList(ctx context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	users, note, serr := s.registered(ctx, c.host)
	if serr != nil {
		return result{}, serr
	}
	return listResult("registereduserjids", "Registered users", users, f, note), nil
}

// onlineUsers are host's users with a session, as bare JIDs, sorted.
func (s *Service) onlineUsers(host string) []string {
	var out []string
	for _, full := range s.cfg.Online.OnlineJIDs(host) {
		bare, _, _ := strings.Cut(full, "/")
		if len(out) == 0 || out[len(out)-1] != bare {
			out = append(out, bare)
		}
	}
	return out
}

func (s *Service) onlineNum(_ context.Context, c call, _ *dataform.Form) (result, *stanza.Error) {
	return result{form: dataform.Build("result", nsAdmin, "", "", []dataform.Field{
		{Var: "onlineusersnum", Label: "Online users", Values: []string{strconv.Itoa(len(s.onlineUsers(c.host)))}},
	})}, nil
}

func (s *Service) onlineList(_ context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	return listResult("onlineuserjids", "Online users", s.onlineUsers(c.host), f, ""), nil
}

// listResult is a result form listing jids, as many as the form's
// max_items asks (at most maxListed).
func listResult(v, label string, jids []string, f *dataform.Form, note string) result {
	n := maxListed
	if m, err := strconv.Atoi(f.Value("max_items")); err == nil && m > 0 && m < n {
		n = m
	}
	if len(jids) > n {
		note = strings.TrimSpace(note + fmt.Sprintf(" The first %d of %d.", n, len(jids)))
		jids = jids[:n]
	}
	return result{note: note, form: dataform.Build("result", nsAdmin, "", "", []dataform.Field{
		{Var: v, Type: "jid-multi", Label: label, Values: jids},
	})}
}

func (s *Service) announce(_ context.Context, c call, f *dataform.Form) (result, *stanza.Error) {
	n, serr := s.broadcast(c, f.Value("subject"), strings.Join(f.Fields["announcement"], "\n"))
	if serr != nil {
		return result{}, serr
	}
	return result{note: fmt.Sprintf("Sent to %d sessions.", n)}, nil
}

// announceMessage takes a message to DOMAIN/announce/online, which
// Gajim's and Psi's "Send server message" send (as ejabberd's and
// Prosody's mod_announce take it): from an admin, its subject and body go
// to every available session of the host as the announce command's do.
func (s *Service) announceMessage(_ context.Context, sess *router.Session, el *xmlstream.Element, to jid.JID) *stanza.Error {
	from := sess.JID()
	if !s.may(to.Domain(), from) {
		s.cfg.Log.Info("announcement refused: not an admin", "host", to.Domain(), "from", from.String())
		return errForbidden
	}
	var subject, body string
	if e := el.Child(xmlstream.NSClient, "subject"); e != nil {
		subject = e.Text()
	}
	if e := el.Child(xmlstream.NSClient, "body"); e != nil {
		body = e.Text()
	}
	_, serr := s.broadcast(call{host: to.Domain(), from: from}, subject, body)
	return serr
}

// broadcast sends a headline with subject and text to every available
// session of c's host and returns how many got it.
func (s *Service) broadcast(c call, subject, text string) (int, *stanza.Error) {
	if strings.TrimSpace(text) == "" {
		return 0, stanza.ErrNotAcceptable.WithText("an empty announcement")
	}
	msg := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "headline").SetAttr("from", c.host)
	if subject != "" {
		msg.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "subject").AppendText(subject))
	}
	msg.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(text))
	n := s.cfg.Online.Broadcast(c.host, msg)
	s.cfg.Log.Info("announcement sent", "host", c.host, "by", c.from.Bare().String(), "sessions", n)
	return n, nil
}

// accountJIDs parses the accounts of a jid-multi field.
func accountJIDs(vals []string, host string) ([]jid.JID, *stanza.Error) {
	var out []jid.JID
	for _, v := range vals {
		if strings.TrimSpace(v) == "" {
			continue
		}
		j, serr := accountJID(v, host)
		if serr != nil {
			return nil, serr
		}
		out = append(out, j)
	}
	if len(out) == 0 {
		return nil, stanza.ErrNotAcceptable.WithText("no account given")
	}
	return out, nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
