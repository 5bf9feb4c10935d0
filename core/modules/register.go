package modules

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// nsRegister is in-band registration (XEP-0077).
const nsRegister = "jabber:iq:register"

func (m *Server) registerRegister() {
	m.handleIQ(scopeAccount, "get", nsRegister, m.registeredInfo)
	m.handleIQ(scopeAccount, "set", nsRegister, m.registerChange)
	// XEP-0077's own examples address the server (to='shakespeare.lit'):
	// that means the sender's account on it.
	m.handleIQ(scopeServer, "get", nsRegister, ownAccount(m.registeredInfo))
	m.handleIQ(scopeServer, "set", nsRegister, ownAccount(m.registerChange))
}

// ownAccount turns a request to a domain into one to the sender's account
// there; an account of another domain has none.
func ownAccount(h iqHandler) iqHandler {
	return func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		me := c.s.JID().Bare()
		if c.to.Domain() != me.Domain() {
			return nil, stanza.ErrNotAllowed.WithText("you have no account on " + c.to.Domain())
		}
		own := *c
		own.to, own.self = me, true
		return h(ctx, &own)
	}
}

func regField(q *xmlstream.Element, name string) (string, bool) {
	f := q.Child(nsRegister, name)
	if f == nil {
		return "", false
	}
	return f.Text(), true
}

// PreAuthIQ answers an IQ from a client that has not logged in: XEP-0077
// account creation. It returns the reply stanza.
func (m *Server) PreAuthIQ(ctx context.Context, h *Host, iq *xmlstream.Element) *xmlstream.Element {
	q := iq.FirstChild()
	if q == nil || q.Space != nsRegister || q.Local != "query" {
		return stanza.ErrorReply(iq, stanza.ErrServiceUnavailable)
	}
	if !h.Registration {
		return stanza.ErrorReply(iq, stanza.ErrNotAllowed.WithText("registration is closed on this server"))
	}
	if h.Auth == nil || !h.Auth.Writable() {
		return stanza.ErrorReply(iq, stanza.ErrNotAllowed.WithText("accounts of this server live in a read-only directory"))
	}
	switch iq.Attr("type") {
	case "get":
		form := xmlstream.NewElement(nsRegister, "query").
			AppendChild(xmlstream.NewElement(nsRegister, "instructions").AppendText("Choose a user name and a password.")).
			AppendChild(xmlstream.NewElement(nsRegister, "username")).
			AppendChild(xmlstream.NewElement(nsRegister, "password"))
		return stanza.Result(iq, form)
	case "set":
		if q.Child(nsRegister, "remove") != nil {
			return stanza.ErrorReply(iq, stanza.ErrNotAuthorized.WithText("log in to remove an account"))
		}
		user, _ := regField(q, "username")
		pass, _ := regField(q, "password")
		if strings.TrimSpace(user) == "" || pass == "" {
			return stanza.ErrorReply(iq, stanza.ErrNotAcceptable.WithText("a user name and a password are required"))
		}
		local, err := jid.NormalizeLocal(user)
		if err != nil {
			return stanza.ErrorReply(iq, stanza.ErrJIDMalformed.WithText("that user name is not allowed"))
		}
		if err := h.Auth.Create(ctx, local, pass); err != nil {
			if errors.Is(err, sdk.ErrExists) {
				return stanza.ErrorReply(iq, stanza.ErrConflict.WithText("that user name is taken"))
			}
			if errors.Is(err, sdk.ErrInvalid) {
				return stanza.ErrorReply(iq, stanza.ErrNotAcceptable.WithText("that password is not allowed"))
			}
			return stanza.ErrorReply(iq, backendError(err))
		}
		m.log.Info("account registered in-band", "user", local+"@"+h.Name)
		return stanza.Result(iq, nil)
	}
	return stanza.ErrorReply(iq, stanza.ErrBadRequest)
}

func (m *Server) registeredInfo(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden
	}
	return xmlstream.NewElement(nsRegister, "query").
		AppendChild(xmlstream.NewElement(nsRegister, "registered")).
		AppendChild(xmlstream.NewElement(nsRegister, "username").AppendText(c.to.Local())).
		AppendChild(xmlstream.NewElement(nsRegister, "password")), nil
}

// registerChange is a password change or an account removal by the
// logged-in owner (XEP-0077 §3.2, §3.3).
func (m *Server) registerChange(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self || c.q.Local != "query" {
		return nil, stanza.ErrForbidden
	}
	h := c.host
	user := c.to.Local()
	writable, err := h.Auth.CanChangePassword(ctx, user)
	if err != nil {
		return nil, backendError(err)
	}
	if c.q.Child(nsRegister, "remove") != nil {
		if !writable || !h.Registration {
			return nil, stanza.ErrNotAllowed.WithText("accounts cannot be removed here")
		}
		if err := m.RemoveAccount(ctx, h, user); err != nil {
			return nil, backendError(err)
		}
		c.s.Send(stanza.Result(c.iq, nil))
		for _, s := range m.router.Sessions(c.to) {
			s.Close("not-authorized", "account removed")
		}
		return nil, nil
	}
	u, _ := regField(c.q, "username")
	pass, ok := regField(c.q, "password")
	if !ok || pass == "" {
		return nil, stanza.ErrBadRequest.WithText("a new password is required")
	}
	if n, err := jid.NormalizeLocal(u); u != "" && (err != nil || n != user) {
		return nil, stanza.ErrBadRequest.WithText("you can change only your own password")
	}
	if !writable || !h.PasswordChange {
		return nil, stanza.ErrNotAllowed.WithText("passwords cannot be changed here")
	}
	if err := h.Auth.SetPassword(ctx, user, pass); err != nil {
		if errors.Is(err, sdk.ErrInvalid) {
			return nil, stanza.ErrNotAcceptable.WithText("that password is not allowed")
		}
		return nil, backendError(err)
	}
	m.log.Info("password changed", "user", c.to.String())
	if err := RevokeTokens(ctx, h, c.to.String()); err != nil {
		// The password did change; the client must hear so.
		m.log.Error("password changed but FAST tokens not revoked; revoke them with koictl user revoke-tokens", "user", c.to.String(), "error", err)
	}
	return nil, nil
}

// RemoveAccount deletes an account and everything its features keep.
func (m *Server) RemoveAccount(ctx context.Context, h *Host, user string) error {
	if err := h.Auth.Delete(ctx, user); err != nil {
		return err
	}
	if j, err := jid.New(user, h.Name, ""); err == nil {
		m.forgetPrefs(j)
	}
	return RemoveAccountData(ctx, h, user+"@"+h.Name)
}

// RemoveAccountData deletes what every writable feature backend keeps for
// owner. It goes on past failures and reports them together.
func RemoveAccountData(ctx context.Context, h *Host, owner string) error {
	var errs []error
	if h.Roster.On && h.Roster.Writable {
		errs = append(errs, wrap("roster", h.Roster.Backend.DeleteRoster(ctx, owner)))
	}
	if h.Offline.On && h.Offline.Writable {
		errs = append(errs, wrap("offline", h.Offline.Backend.DeleteAll(ctx, owner)))
	}
	if h.VCard.On && h.VCard.Writable {
		err := h.VCard.Backend.DeleteVCard(ctx, owner)
		if errors.Is(err, sdk.ErrNotFound) {
			err = nil
		}
		errs = append(errs, wrap("vcard", err))
	}
	if h.Private.On && h.Private.Writable {
		errs = append(errs, wrap("private", h.Private.Backend.DeletePrivate(ctx, owner)))
	}
	if h.Archive.On && h.Archive.Writable {
		errs = append(errs, wrap("archive", removeArchive(ctx, h, owner)))
	}
	if h.Blocklist.On && h.Blocklist.Writable {
		errs = append(errs, wrap("blocklist", h.Blocklist.Backend.UnblockAll(ctx, owner)))
	}
	if h.PubSub.On && h.PubSub.Writable {
		errs = append(errs, wrap("pep", removePEP(ctx, h.PubSub.Backend, owner)))
	}
	errs = append(errs, RevokeTokens(ctx, h, owner))
	return errors.Join(errs...)
}

// RevokeTokens deletes every FAST token of owner (a bare JID): after a
// password change, an account removal, or at an operator's request. A
// host without tokens has nothing to revoke.
func RevokeTokens(ctx context.Context, h *Host, owner string) error {
	if !h.Tokens.On || !h.Tokens.Writable {
		return nil
	}
	return wrap("tokens", h.Tokens.Backend.DeleteTokens(ctx, owner))
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("remove %s data: %w", what, err)
}

// removePEP deletes owner's PEP nodes with their items.
func removePEP(ctx context.Context, b PubSubBackend, owner string) error {
	nodes, err := b.ListPubSubNodes(ctx, owner)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		if err := b.DeletePubSubNode(ctx, owner, n.Node); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
