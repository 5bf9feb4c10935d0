package sdktest

import (
	"errors"
	"time"

	"github.com/koi-im/koi/sdk"
)

// checkRefusals calls, through the wire, every method of a feature the
// plugin does not declare (or declares read-only, for the writers): each
// must be refused, and the refused writes must leave no trace.
func checkRefusals(e *env) {
	c := e.caps
	host, user, owner, contact := e.o.Host, e.user("refused"), e.owner("refused"), e.contact("refused")
	readOnly := []error{sdk.ErrReadOnly, errors.ErrUnsupported}
	unsupported := []error{errors.ErrUnsupported}
	refused := 0
	write := func(what string, err error) {
		e.t.Helper()
		refused++
		e.wantErr(what+" (not writable)", err, readOnly...)
	}
	read := func(what string, err error) {
		e.t.Helper()
		refused++
		e.wantErr(what+" (not served)", err, unsupported...)
	}

	if a, ok := e.b.(sdk.AuthAdmin); ok && !c.Auth.Access.Writable() {
		write("CreateUser", a.CreateUser(e.ctx, host, user, "secret"))
		write("SetPassword", a.SetPassword(e.ctx, host, user, "secret"))
		write("DeleteUser", a.DeleteUser(e.ctx, host, user))
		if !c.Auth.CanList() {
			_, err := a.ListUsers(e.ctx, host)
			write("ListUsers", err)
		}
	}
	if a, ok := e.b.(sdk.Auth); ok {
		if !c.Auth.Access.Readable() {
			_, err := a.UserExists(e.ctx, host, user)
			read("UserExists", err)
			_, err = a.CheckPassword(e.ctx, host, user, "secret")
			read("CheckPassword", err)
		} else if ok, err := a.UserExists(e.ctx, host, user); e.noErr("UserExists after the refused CreateUser", err) && ok {
			e.t.Error("a refused CreateUser created the user")
		}
		if !c.Auth.SCRAM {
			_, err := a.SCRAMCredentials(e.ctx, host, user, sdk.HashSHA256)
			read("SCRAMCredentials without declared SCRAM", err)
		}
	}

	if r, ok := e.b.(sdk.RosterWriter); ok && !c.Roster.Writable() {
		_, err := r.SetItem(e.ctx, owner, sdk.RosterItem{JID: contact, Subscription: sdk.SubNone})
		write("SetItem", err)
		_, err = r.DeleteItem(e.ctx, owner, contact)
		write("DeleteItem", err)
		write("SetPending", r.SetPending(e.ctx, owner, sdk.PendingSubscription{JID: contact, Stanza: "<presence/>"}))
		write("DeletePending", r.DeletePending(e.ctx, owner, contact))
		write("DeleteRoster", r.DeleteRoster(e.ctx, owner))
	}
	if r, ok := e.b.(sdk.Roster); ok {
		st, err := r.GetRoster(e.ctx, owner)
		if !c.Roster.Readable() {
			read("GetRoster", err)
		} else if e.noErr("GetRoster after the refused writes", err) && (len(st.Items) > 0 || len(st.Pending) > 0) {
			e.t.Errorf("refused roster writes changed the roster: %+v", st)
		}
	}

	if o, ok := e.b.(sdk.Offline); ok {
		if !c.Offline.Writable() {
			write("Store", o.Store(e.ctx, owner, sdk.OfflineMessage{Stanza: "<message/>", Stamp: time.Now()}))
			write("DeleteAll", o.DeleteAll(e.ctx, owner))
		}
		n, err := o.Count(e.ctx, owner)
		if !c.Offline.Readable() {
			read("Count", err)
			_, err = o.Pop(e.ctx, owner)
			read("Pop", err)
		} else if e.noErr("Count after the refused Store", err) && n != 0 {
			e.t.Errorf("a refused Store stored a message: Count is %d", n)
		}
	}

	if v, ok := e.b.(sdk.VCardWriter); ok && !c.VCard.Writable() {
		write("SetVCard", v.SetVCard(e.ctx, owner, vcardDoc("refused")))
		write("DeleteVCard", v.DeleteVCard(e.ctx, owner))
	}
	if v, ok := e.b.(sdk.VCard); ok {
		_, err := v.GetVCard(e.ctx, owner)
		if !c.VCard.Readable() {
			read("GetVCard", err)
		} else {
			e.wantErr("GetVCard after the refused SetVCard", err, sdk.ErrNotFound)
		}
	}

	if p, ok := e.b.(sdk.PrivateWriter); ok && !c.Private.Writable() {
		write("SetPrivate", p.SetPrivate(e.ctx, owner, "query", "urn:sdktest", "<query xmlns='urn:sdktest'/>"))
		write("DeletePrivate", p.DeletePrivate(e.ctx, owner))
	}
	if p, ok := e.b.(sdk.Private); ok {
		_, err := p.GetPrivate(e.ctx, owner, "query", "urn:sdktest")
		if !c.Private.Readable() {
			read("GetPrivate", err)
		} else {
			e.wantErr("GetPrivate after the refused SetPrivate", err, sdk.ErrNotFound)
		}
	}

	if b, ok := e.b.(sdk.BlocklistWriter); ok && !c.Blocklist.Writable() {
		write("Block", b.Block(e.ctx, owner, []string{contact}))
		write("Unblock", b.Unblock(e.ctx, owner, []string{contact}))
		write("UnblockAll", b.UnblockAll(e.ctx, owner))
	}
	if b, ok := e.b.(sdk.Blocklist); ok {
		list, err := b.GetBlocklist(e.ctx, owner)
		if !c.Blocklist.Readable() {
			read("GetBlocklist", err)
		} else if e.noErr("GetBlocklist after the refused Block", err) && len(list) > 0 {
			e.t.Errorf("a refused Block changed the blocklist: %q", list)
		}
	}

	if b, ok := e.b.(sdk.TokensWriter); ok && !c.Tokens.Writable() {
		h := make([]byte, 32)
		write("PutToken", b.PutToken(e.ctx, sdk.Token{Owner: owner, Agent: "a", Hash: h, Expires: time.Now().Add(time.Hour)}))
		write("DeleteToken", b.DeleteToken(e.ctx, owner, "a", h))
		write("DeleteTokens", b.DeleteTokens(e.ctx, owner))
	}
	if b, ok := e.b.(sdk.Tokens); ok {
		toks, err := b.GetTokens(e.ctx, owner, "a")
		if !c.Tokens.Readable() {
			read("GetTokens", err)
		} else if e.noErr("GetTokens after the refused PutToken", err) && len(toks) > 0 {
			e.t.Errorf("a refused PutToken stored a token: %+v", toks)
		}
	}

	refused += refusePubSub(e, owner, contact)

	if a, ok := e.b.(sdk.Archive); ok {
		if !c.Archive.Access.Writable() {
			write("AppendArchive", a.AppendArchive(e.ctx, []sdk.ArchivedMessage{{
				Owner: owner, StanzaID: "1", Peer: contact, Stamp: time.Now().UTC(), Stanza: "<message/>",
			}}))
			write("DeleteArchive", a.DeleteArchive(e.ctx, owner))
			write("SetArchivePrefs", a.SetArchivePrefs(e.ctx, owner, sdk.ArchivePrefs{Default: sdk.ArchiveAlways}))
		}
		if !c.Archive.Access.Readable() {
			_, err := a.QueryArchive(e.ctx, sdk.ArchiveQuery{Owner: owner, Max: 10})
			read("QueryArchive", err)
			_, err = a.GetArchivePrefs(e.ctx, owner)
			read("GetArchivePrefs", err)
		} else if !c.Archive.FullText {
			_, err := a.QueryArchive(e.ctx, sdk.ArchiveQuery{Owner: owner, Max: 10, Text: "hello"})
			read("QueryArchive with Text without declared full-text search", err)
		}
	}

	if refused == 0 {
		e.t.Log("the plugin declares every feature it can be asked for: nothing to refuse")
	}
}

// refusePubSub is checkRefusals for pubsub; it returns how many calls it
// expected to be refused.
func refusePubSub(e *env, service, contact string) int {
	c := e.caps
	refused := 0
	wantRefused := func(what string, err error, want ...error) {
		e.t.Helper()
		refused++
		e.wantErr(what, err, want...)
	}
	readOnly := []error{sdk.ErrReadOnly, errors.ErrUnsupported}
	const node = "urn:sdktest:refused"
	if w, ok := e.b.(sdk.PubSubWriter); ok && !c.PubSub.Writable() {
		n := sdk.PubSubNode{Service: service, Node: node, Created: time.Now().UTC()}
		wantRefused("CreatePubSubNode (not writable)", w.CreatePubSubNode(e.ctx, n, service), readOnly...)
		wantRefused("ConfigurePubSubNode (not writable)", w.ConfigurePubSubNode(e.ctx, n), readOnly...)
		wantRefused("DeletePubSubNode (not writable)", w.DeletePubSubNode(e.ctx, service, node), readOnly...)
		it := sdk.PubSubItem{ID: "1", Payload: "<x xmlns='urn:sdktest'/>", Published: time.Now().UTC()}
		wantRefused("PublishPubSubItem (not writable)", w.PublishPubSubItem(e.ctx, service, node, it, 0), readOnly...)
		wantRefused("RetractPubSubItem (not writable)", w.RetractPubSubItem(e.ctx, service, node, "1"), readOnly...)
		wantRefused("PurgePubSubNode (not writable)", w.PurgePubSubNode(e.ctx, service, node), readOnly...)
		wantRefused("SetPubSubAffiliation (not writable)", w.SetPubSubAffiliation(e.ctx, sdk.PubSubAffiliation{
			Service: service, Node: node, JID: contact, Affiliation: sdk.PubSubMember}), readOnly...)
		wantRefused("SetPubSubSubscription (not writable)", w.SetPubSubSubscription(e.ctx, sdk.PubSubSubscription{
			Service: service, Node: node, JID: contact, State: sdk.PubSubSubscribed}), readOnly...)
	}
	p, ok := e.b.(sdk.PubSub)
	if !ok {
		return refused
	}
	_, err := p.GetPubSubNode(e.ctx, service, node)
	if !c.PubSub.Readable() {
		unsupported := errors.ErrUnsupported
		wantRefused("GetPubSubNode (not served)", err, unsupported)
		_, err = p.ListPubSubNodes(e.ctx, service)
		wantRefused("ListPubSubNodes (not served)", err, unsupported)
		_, err = p.GetPubSubItems(e.ctx, sdk.PubSubItemQuery{Service: service, Node: node, Max: 10})
		wantRefused("GetPubSubItems (not served)", err, unsupported)
		_, err = p.GetPubSubAffiliations(e.ctx, service, "", contact)
		wantRefused("GetPubSubAffiliations (not served)", err, unsupported)
		_, err = p.GetPubSubSubscriptions(e.ctx, service, "", contact)
		wantRefused("GetPubSubSubscriptions (not served)", err, unsupported)
		return refused
	}
	e.wantErr("GetPubSubNode after the refused CreatePubSubNode", err, sdk.ErrNotFound)
	return refused
}
