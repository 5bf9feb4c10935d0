package modules

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Message Archive Management (XEP-0313) with unique and stable stanza ids
// (XEP-0359) and Result Set Management (XEP-0059).
//
// A one-to-one message with something worth keeping is archived twice when
// it is routed: in the sender's archive (outgoing) and in the recipient's
// (incoming), each copy under an id of its own, made by the core and
// ordered like time. The copy delivered to the recipient, live or stored
// offline, carries the recipient's id in a <stanza-id/>, so a client can
// match what it received with what the archive returns. Room for both
// copies is reserved in the archive writer's bounded queue before the
// message is delivered and committed after, so a message is archived
// exactly when it is delivered: if the queue stays full (the backend is
// down or too slow and the writer's journal is full or off) the message is
// refused with <resource-constraint/> rather than delivered unarchived.
// Offline delivery does not archive again.
const (
	nsMAM2         = "urn:xmpp:mam:2"
	nsMAM2Extended = "urn:xmpp:mam:2#extended"
	nsMAM1         = "urn:xmpp:mam:1"
	nsSID          = "urn:xmpp:sid:0"
	nsRSM          = "http://jabber.org/protocol/rsm"
	nsForward      = "urn:xmpp:forward:0"
	nsFulltext     = "urn:xmpp:fulltext:0"
)

// Limits of archive queries and preferences.
const (
	// mamMaxPrefsJIDs bounds each list of the preferences.
	mamMaxPrefsJIDs = 1000
	// mamSyncTimeout bounds the wait for the owner's own pending writes
	// before a query.
	mamSyncTimeout = 5 * time.Second
	// prefsCacheSize bounds the preferences kept in memory.
	prefsCacheSize = 10000
)

// Archive is a host's message archive: Backend answers queries and keeps
// preferences and Writer batches the writes to it. Default is the policy
// for users without preferences (sdk.ArchiveAlways if empty).
type Archive struct {
	Backend  sdk.Archive
	Writer   *archive.Writer
	FullText bool
	Retract  bool // Backend is an sdk.ArchiveRetractor that declared it
	Default  string
	// PrefsWait bounds the wait for the preferences of an owner not in
	// memory while the backend is unavailable (default 2s: well over a
	// plugin's restart, well under a client's patience).
	PrefsWait time.Duration
}

// Sync waits until owner's pending messages are stored.
func (a *Archive) Sync(ctx context.Context, owner string) error { return a.Writer.Sync(ctx, owner) }

// QueryArchive reads one page of an archive from the backend.
func (a *Archive) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return a.Backend.QueryArchive(ctx, q)
}

// archiveState is the MAM module's memory: the id generator, a bounded
// cache of preferences, which are read for every archived message, and
// the buffers stanzas are serialised in.
type archiveState struct {
	ids *archive.IDs

	// prefs is keyed by the owner's bare JID. Lookups, one or two per
	// message, far outnumber changes: readers share the lock.
	mu    sync.RWMutex
	prefs map[string]sdk.ArchivePrefs
	// online are the users with a session here (bare JIDs), whose
	// preferences the cache keeps whatever its bound.
	online map[string]bool

	ser archive.Serializer

	// unknownLogged is when (Unix nanoseconds) a message was last logged
	// as not archived for want of preferences: once a second at most.
	unknownLogged atomic.Int64
}

func newArchiveState() *archiveState {
	return &archiveState{
		ids:    archive.NewIDs(),
		prefs:  map[string]sdk.ArchivePrefs{},
		online: map[string]bool{},
	}
}

func (m *Server) registerMAM() {
	for _, ns := range []string{nsMAM2, nsMAM1} {
		m.handleIQ(scopeAccount, "get", ns, m.mamIQ(ns))
		m.handleIQ(scopeAccount, "set", ns, m.mamIQ(ns))
	}
}

// archiveFeatures are the disco features of a host whose archive is on.
func archiveFeatures(h *Host) []string {
	if !h.Archive.On {
		return nil
	}
	f := []string{nsMAM2, nsMAM2Extended, nsMAM1, nsSID, archive.NSRetract1}
	if h.Archive.Backend.FullText {
		f = append(f, nsFulltext)
	}
	if h.Archive.Backend.Retract {
		f = append(f, archive.FeatureTombstone)
	}
	return f
}

// The delivery side.

// archivable reports whether a message goes into archives: a chat or
// normal message with a body or an encrypted payload, or one hinted
// <store/>, unless hinted <no-store/> or <no-permanent-store/> (XEP-0334).
// Chat states, receipts and markers alone are not archived.
func archivable(el *xmlstream.Element) bool {
	switch messageType(el) {
	case "chat", "normal":
	default:
		return false
	}
	return archive.Keepable(el)
}

// stripStanzaIDs removes <stanza-id/> elements that claim to come from an
// entity of this server: only the server may add those (XEP-0359 §4). A
// component (a room) stamps its own: from it, that one is kept.
func (m *Server) stripStanzaIDs(el *xmlstream.Element) {
	archive.StripStanzaIDs(el, func(by, sender jid.JID) bool {
		return m.isLocal(by) || (m.component(by.Domain()) != nil && by.Bare() != sender.Bare())
	})
}

// archiving is a message's archive copies between reservation and commit.
// It is a value with room for both copies inline, so that archiving a
// message allocates no bookkeeping; the zero value archives nothing.
type archiving struct {
	msgs [2]sdk.ArchivedMessage
	n    int // copies in msgs
	// parts are the reservations: one for both copies when they go to
	// the same writer (both users on one host), else one per copy; each
	// commits msgs[lo:hi].
	parts  [2]archivePart
	nparts int
	// retracts is the id of the message this one retracts (XEP-0424).
	retracts, id string
}

type archivePart struct {
	r      archive.Reservation
	lo, hi int
}

// commit queues the copies: the message was delivered.
func (a *archiving) commit(m *Server) {
	for i := range a.parts[:a.nparts] {
		p := &a.parts[i]
		if err := p.r.Commit(a.msgs[p.lo:p.hi]...); err != nil {
			m.log.Error("archiving a delivered message failed", "error", err)
		}
	}
	if a.retracts != "" && m.retractions != nil {
		// A copy: a.msgs handed to an interface would put every
		// message's archiving on the heap.
		m.retractions.Retracted(append([]sdk.ArchivedMessage(nil), a.msgs[:a.n]...), a.retracts, a.id)
	}
}

// cancel gives the room back: the message was not delivered.
func (a *archiving) cancel() {
	for i := range a.parts[:a.nparts] {
		a.parts[i].r.Release()
	}
}

// archiveCopy is one archive that keeps a message.
type archiveCopy struct {
	h             *Host
	owner, peer   string  // bare JIDs, canonical
	ownerJ, peerJ jid.JID // the same, bare
	peerRes       string
	outgoing      bool
}

// prepareArchive decides which archives keep el, a message from a local
// user to the local account to, reserves room for the copies and adds the
// recipient's <stanza-id/> to el. sender, if not zero, is the sender's
// JID as known by the caller: the from address is parsed only when it
// does not spell sender. It returns the zero archiving when nothing is
// archived, and a stanza error when the message must be refused.
func (m *Server) prepareArchive(ctx context.Context, el *xmlstream.Element, sender, to jid.JID) (archiving, *stanza.Error) {
	var a archiving
	m.stripStanzaIDs(el)
	if !archivable(el) {
		return a, nil
	}
	fromAttr := el.Attr("from")
	from, err := jid.ParseKnown(fromAttr, sender)
	if err != nil {
		return a, nil
	}
	hs, hr := m.Host(from.Domain()), m.Host(to.Domain())
	recvOn, sendOn := hr != nil && hr.Archive.On, hs != nil && hs.Archive.On
	if !recvOn && !sendOn {
		// Every message of a server without an archive comes here.
		return a, nil
	}
	// The bare JIDs as prefixes of the addresses the stanza carries, which
	// are canonical as a rule: no string is built for them.
	fromBare, recipient := from.ReuseBare(fromAttr), to.ReuseBare(el.Attr("to"))

	var copies [2]archiveCopy
	n := 0
	if recvOn {
		copies[n] = archiveCopy{hr, recipient, fromBare, to.Bare(), from.Bare(), from.Resource(), false}
		n++
	}
	if sendOn && fromBare != recipient {
		copies[n] = archiveCopy{hs, fromBare, recipient, from.Bare(), to.Bare(), to.Resource(), true}
		n++
	}
	keep := copies[:0]
	for _, c := range copies[:n] {
		ok, err := m.archiveAllowed(ctx, c)
		if err != nil {
			// The owner's preferences stayed unreadable (the backend
			// is down for longer than PrefsWait): the copy is not
			// archived and the message goes on. Archiving it under the
			// host's default could keep what a user who said "never"
			// asked not to be kept; refusing it would turn an archive
			// outage into a messaging outage. Owners who chat have
			// their preferences in memory, so this is rare.
			m.archive.logUnknownPrefs(m.log, c.owner, err)
			continue
		}
		if ok {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return a, nil
	}

	for i := 0; i < len(keep); {
		w := keep[i].h.Archive.Backend.Writer
		j := i + 1
		for j < len(keep) && keep[j].h.Archive.Backend.Writer == w {
			j++
		}
		r, err := w.Reserve(ctx, j-i)
		if err != nil {
			a.cancel()
			m.log.Warn("message refused: the archive cannot keep up", "owner", keep[i].owner, "error", err)
			return archiving{}, stanza.ErrResourceConstraint.WithText("the message archive is busy; try again later")
		}
		a.parts[a.nparts] = archivePart{r: r, lo: i, hi: j}
		a.nparts++
		i = j
	}
	var body string
	if b := el.Child(xmlstream.NSClient, "body"); b != nil {
		body = b.Text()
	}
	a.retracts, a.id = archive.RetractedID(el), el.Attr("id")
	serialized := m.archive.ser.String(el) // as routed, before our stanza-id
	var ids [len(copies)]string
	var stamps [len(copies)]time.Time
	m.archive.ids.Fill(ids[:len(keep)], stamps[:len(keep)])
	for i, c := range keep {
		a.msgs[a.n] = sdk.ArchivedMessage{
			Owner: c.owner, StanzaID: ids[i], Peer: c.peer, PeerResource: c.peerRes,
			Stamp: stamps[i], Outgoing: c.outgoing, Stanza: serialized, Body: body,
		}
		a.n++
		if !c.outgoing {
			el.AppendChild(archive.StanzaIDElement(c.owner, ids[i]))
		}
	}
	return a, nil
}

// archiveAllowed applies owner's preferences to a message with peer.
func (m *Server) archiveAllowed(ctx context.Context, c archiveCopy) (bool, error) {
	p, err := m.archivePrefs(ctx, c.h, c.owner)
	if err != nil {
		return false, err
	}
	for _, j := range p.Never {
		if j == c.peer {
			return false, nil
		}
	}
	for _, j := range p.Always {
		if j == c.peer {
			return true, nil
		}
	}
	switch p.Default {
	case sdk.ArchiveNever:
		return false, nil
	case sdk.ArchiveRoster:
		in := false
		err := m.rosters.With(ctx, c.ownerJ, func(r *roster.Roster) error {
			_, in = r.Item(c.peerJ)
			return nil
		})
		return in, err
	}
	return true, nil
}

// archivePrefs returns owner's preferences (owner a bare JID), with the
// host's default filled in, from memory when they were read before. While
// the backend is unavailable (its plugin restarting, which takes a tenth
// of a second) it waits for it, at most PrefsWait.
func (m *Server) archivePrefs(ctx context.Context, h *Host, owner string) (sdk.ArchivePrefs, error) {
	st := m.archive
	st.mu.RLock()
	p, ok := st.prefs[owner]
	st.mu.RUnlock()
	if ok {
		return p, nil
	}
	wait := h.Archive.Backend.PrefsWait
	if wait <= 0 {
		wait = defaultPrefsWait
	}
	p, err := readArchivePrefs(ctx, h.Archive.Backend.Backend, owner, wait)
	if err != nil {
		return sdk.ArchivePrefs{}, err
	}
	if p.Default == "" {
		p.Default = hostArchiveDefault(h)
	}
	m.cachePrefs(owner, p)
	return p, nil
}

// warmArchivePrefs reads the preferences of owner, a user coming online,
// into memory if they are not there: then the archive plugin restarting
// while the user chats does not hold the user's messages back. One try,
// briefly: a failure only leaves the reading to the first message.
func (m *Server) warmArchivePrefs(ctx context.Context, owner jid.JID) {
	h := m.Host(owner.Domain())
	if h == nil || !h.Archive.On || h.Archive.Backend == nil {
		return
	}
	key := owner.String()
	st := m.archive
	st.mu.Lock()
	st.online[key] = true
	_, ok := st.prefs[key]
	st.mu.Unlock()
	if ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, warmPrefsTimeout)
	defer cancel()
	p, err := h.Archive.Backend.Backend.GetArchivePrefs(ctx, key)
	if err != nil {
		return
	}
	if p.Default == "" {
		p.Default = hostArchiveDefault(h)
	}
	m.cachePrefs(key, p)
}

// warmPrefsTimeout bounds warmArchivePrefs: a login does not wait long
// for what a message can read later.
const warmPrefsTimeout = 500 * time.Millisecond

// defaultPrefsWait is Archive.PrefsWait's default.
const defaultPrefsWait = 2 * time.Second

// readArchivePrefs reads owner's preferences from b, trying again while b
// is unavailable, for wait at most or until ctx ends.
func readArchivePrefs(ctx context.Context, b sdk.Archive, owner string, wait time.Duration) (sdk.ArchivePrefs, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		p, err := b.GetArchivePrefs(ctx, owner)
		if err == nil || !errors.Is(err, sdk.ErrUnavailable) {
			return p, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return p, err
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// logUnknownPrefs logs a copy not archived for want of its owner's
// preferences, once a second at most: an outage would otherwise log every
// message.
func (st *archiveState) logUnknownPrefs(log hclog.Logger, owner string, err error) {
	now := time.Now().UnixNano()
	last := st.unknownLogged.Load()
	if now-last < int64(time.Second) || !st.unknownLogged.CompareAndSwap(last, now) {
		return
	}
	log.Warn("archive preferences unreadable; a message is delivered without its archive copy", "owner", owner, "error", err)
}

func hostArchiveDefault(h *Host) string {
	if d := h.Archive.Backend.Default; d != "" {
		return d
	}
	return sdk.ArchiveAlways
}

func (m *Server) cachePrefs(owner string, p sdk.ArchivePrefs) {
	st := m.archive
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.prefs[owner]; !ok && len(st.prefs) >= prefsCacheSize {
		// Forget an arbitrary entry of a user who is not online: map
		// order is random enough, and a miss costs one backend call.
		// With the online users' entries filling the bound the cache
		// grows past it: they are few next to the users' count.
		probes := 0
		for k := range st.prefs {
			if !st.online[k] {
				delete(st.prefs, k)
				break
			}
			if probes++; probes == maxEvictionProbes {
				break
			}
		}
	}
	st.prefs[owner] = p
}

// maxEvictionProbes bounds the entries cachePrefs looks at for one not
// kept for an online user.
const maxEvictionProbes = 64

// wentOffline lets the cache forget owner's preferences again once the
// user has no session left.
func (m *Server) wentOffline(owner jid.JID) {
	if u := m.router.User(owner); u != nil && u.HasLocal() {
		return
	}
	m.archive.mu.Lock()
	delete(m.archive.online, owner.String())
	m.archive.mu.Unlock()
}

// forgetAllPrefs empties the preferences cache: a host's archive may be
// another backend now.
func (st *archiveState) forgetAllPrefs() {
	st.mu.Lock()
	clear(st.prefs)
	st.mu.Unlock()
}

func (m *Server) forgetPrefs(owner jid.JID) {
	m.archive.mu.Lock()
	delete(m.archive.prefs, owner.Bare().String())
	m.archive.mu.Unlock()
}

// The query side.

// mamIQ answers the IQs of one MAM namespace: the query form, queries and
// preferences.
func (m *Server) mamIQ(ns string) iqHandler {
	return func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		if !c.self {
			return nil, stanza.ErrForbidden.WithText("an archive is readable by its owner only")
		}
		if !c.host.Archive.On {
			return nil, stanza.ErrServiceUnavailable.WithText("this host keeps no message archive")
		}
		typ := c.iq.Attr("type")
		switch {
		case c.q.Local == "query" && typ == "get":
			return archive.QueryForm(ns, c.host.Archive.Backend.FullText), nil
		case c.q.Local == "query" && typ == "set":
			return m.mamQuery(ctx, c, ns)
		case c.q.Local == "prefs" && typ == "get":
			p, err := m.archivePrefs(ctx, c.host, c.to.String())
			if err != nil {
				return nil, backendError(err)
			}
			return prefsElement(ns, p), nil
		case c.q.Local == "prefs" && typ == "set":
			return m.mamSetPrefs(ctx, c, ns)
		}
		return nil, stanza.ErrBadRequest
	}
}

func (m *Server) mamQuery(ctx context.Context, c *iqCall, ns string) (*xmlstream.Element, *stanza.Error) {
	req, serr := archive.ParseQuery(c.q, ns, c.host.Archive.Backend.FullText)
	if serr != nil {
		return nil, serr
	}
	owner := c.to.String()
	req.Q.Owner = owner
	page, err := archive.Read(ctx, c.host.Archive.Backend, req, mamSyncTimeout)
	var noID *archive.NoSuchIDError
	switch {
	case errors.As(err, &noID):
		return nil, stanza.ErrItemNotFound.WithText(noID.Error())
	case errors.Is(err, archive.ErrPending):
		m.log.Warn("archive query before pending writes are stored", "owner", owner, "error", err)
		return nil, stanza.ErrInternal.WithText("the message archive is busy; try again later")
	case errors.Is(err, sdk.ErrInvalid):
		return nil, stanza.ErrBadRequest
	case err != nil:
		return nil, backendError(err)
	}

	msgs := page.Messages
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
		if req.Flip {
			order[i] = len(msgs) - 1 - i
		}
	}
	for _, i := range order {
		r, err := resultMessage(ns, c.s, owner, req.QueryID, msgs[i])
		if err != nil {
			m.log.Warn("skipping unreadable archived message", "owner", owner, "stanza_id", msgs[i].StanzaID, "error", err)
			continue
		}
		if !c.s.Send(r) {
			return nil, nil // the session is going away; nobody waits for the rest
		}
	}

	return archive.Fin(ns, req.Q, page), nil
}

// resultMessage wraps an archived message for delivery (XEP-0313 §4.2).
func resultMessage(ns string, s *router.Session, owner, queryID string, am sdk.ArchivedMessage) (*xmlstream.Element, error) {
	orig, err := stanza.Parse(am.Stanza)
	if err != nil {
		return nil, err
	}
	return archive.Result(ns, queryID, owner, s.JID().String(), am, orig, newID()), nil
}

func prefsElement(ns string, p sdk.ArchivePrefs) *xmlstream.Element {
	el := xmlstream.NewElement(ns, "prefs").SetAttr("default", p.Default)
	list := func(name string, jids []string) {
		l := xmlstream.NewElement(ns, name)
		for _, j := range jids {
			l.AppendChild(xmlstream.NewElement(ns, "jid").AppendText(j))
		}
		el.AppendChild(l)
	}
	list("always", p.Always)
	list("never", p.Never)
	return el
}

func (m *Server) mamSetPrefs(ctx context.Context, c *iqCall, ns string) (*xmlstream.Element, *stanza.Error) {
	var p sdk.ArchivePrefs
	switch d := c.q.Attr("default"); d {
	case sdk.ArchiveAlways, sdk.ArchiveNever, sdk.ArchiveRoster:
		p.Default = d
	default:
		return nil, stanza.ErrBadRequest.WithText("default must be always, never or roster")
	}
	seen := map[string]bool{}
	read := func(name string) ([]string, *stanza.Error) {
		var out []string
		l := c.q.Child(ns, name)
		if l == nil {
			return nil, nil
		}
		for _, e := range l.Elements() {
			if e.Local != "jid" {
				continue
			}
			j, err := jid.Parse(e.Text())
			if err != nil {
				return nil, stanza.ErrJIDMalformed.WithText("invalid JID in " + name)
			}
			s := j.Bare().String()
			if seen[s] {
				return nil, stanza.ErrBadRequest.WithText(s + " is listed twice")
			}
			seen[s] = true
			out = append(out, s)
		}
		if len(out) > mamMaxPrefsJIDs {
			return nil, stanza.ErrNotAcceptable.WithText("too many JIDs in " + name)
		}
		return out, nil
	}
	var serr *stanza.Error
	if p.Always, serr = read("always"); serr != nil {
		return nil, serr
	}
	if p.Never, serr = read("never"); serr != nil {
		return nil, serr
	}
	if err := c.host.Archive.Backend.Backend.SetArchivePrefs(ctx, c.to.String(), p); err != nil {
		return nil, backendError(err)
	}
	m.cachePrefs(c.to.String(), p)
	return prefsElement(ns, p), nil
}

// removeArchive deletes owner's archive once the owner's pending writes
// are stored, so that none lands after the deletion. Without a writer (in
// koictl) there is nothing pending here.
func removeArchive(ctx context.Context, h *Host, owner string) error {
	return h.Archive.Backend.Remove(ctx, owner)
}

// Remove deletes owner's archive once the owner's pending writes are
// stored, so that none lands after the deletion.
func (a *Archive) Remove(ctx context.Context, owner string) error {
	if a.Writer != nil {
		sctx, cancel := context.WithTimeout(ctx, mamSyncTimeout)
		err := a.Writer.Sync(sctx, owner)
		cancel()
		if err != nil {
			return err
		}
	}
	return a.Backend.DeleteArchive(ctx, owner)
}
