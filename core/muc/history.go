package muc

import (
	"context"
	"strconv"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// A room's discussion history (XEP-0045 §7.2.15) is kept in memory: its
// last max_history messages with a body. A room that comes into memory
// from the store (at start, or when this node takes it over from another)
// has none there, but when its logging is on its archive has what was
// said: the first join reads the history back from it, as Prosody's
// mod_muc_mam serves history from the archive, so that a restart does
// not leave rooms looking empty.

// maxHistoryBytes bounds the memory of one room's history: with stanzas of
// up to limits.max_stanza_size, max_history of them could be megabytes.
const maxHistoryBytes = 512 << 10

// historyWait bounds how long a join waits for the history to be read
// from the archive; a slow archive then costs the newcomer the history,
// not the room. historyRetry is how long after a failed read the next
// join tries again.
const (
	historyWait  = 2 * time.Second
	historyRetry = 30 * time.Second
)

// histEntry is one message of the room's history.
type histEntry struct {
	msg   *xmlstream.Element // as broadcast, without to
	id    string             // its stanza-id, which sorts like time
	at    time.Time
	chars int // size of the serialised stanza, for maxchars
}

// historySeed is a room's history still to be read from its archive.
type historySeed struct {
	done    chan struct{} // closed when the running read ends
	running bool
	retryAt time.Time // after a failed read, when the next may start
}

// keepHistory adds e, the newest message, to the history and drops the
// oldest past max_history, then past the byte bound; e stays.
func (r *room) keepHistory(e histEntry) {
	if r.svc.cfg.MaxHistory <= 0 {
		return
	}
	e.chars = len(e.msg.String())
	r.history = append(r.history, e)
	r.historyBytes += e.chars
	r.trimHistory()
}

func (r *room) trimHistory() {
	over := 0
	for over < len(r.history)-1 && (len(r.history)-over > r.svc.cfg.MaxHistory || r.historyBytes > maxHistoryBytes) {
		r.historyBytes -= r.history[over].chars
		over++
	}
	clear(r.history[:over])
	r.history = r.history[over:]
}

// isEntering reports whether el, to an occupant JID, may be a join, which
// sends the history: available presence.
func isEntering(el *xmlstream.Element, to jid.JID) bool {
	return el.Local == "presence" && el.Attr("type") == "" && to.Resource() != ""
}

// awaitHistory reads the room's history from its archive if it is still
// to be read, or waits for the read another join started, for historyWait
// at most. The room's lock is not held.
func (r *room) awaitHistory(ctx context.Context) {
	r.mu.Lock()
	sd, a := r.seed, r.archive()
	if sd == nil || a == nil || r.gone || (!sd.running && r.svc.now().Before(sd.retryAt)) {
		r.mu.Unlock()
		return
	}
	if !sd.running {
		sd.running, sd.done = true, make(chan struct{})
		go r.readHistory(context.WithoutCancel(ctx), a, sd)
	}
	done := sd.done
	r.mu.Unlock()
	t := time.NewTimer(historyWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// readHistory reads the room's last messages from a, its archive, and puts
// those with a body before what the history holds.
func (r *room) readHistory(ctx context.Context, a Archive, sd *historySeed) {
	defer close(sd.done)
	owner := r.jid.String()
	cctx, cancel := r.svc.storeCtx(ctx)
	defer cancel()
	page, err := archive.Read(cctx, a, archive.Query{Q: sdk.ArchiveQuery{
		Owner: owner, Last: true, Max: min(r.svc.cfg.MaxHistory, sdk.MaxArchivePage),
	}}, r.svc.cfg.StoreTimeout)
	var got []histEntry
	for _, am := range page.Messages {
		m, perr := stanza.Parse(am.Stanza)
		if perr != nil {
			r.svc.log.Warn("skipping an unreadable archived message for the room's history", "room", owner, "stanza_id", am.StanzaID, "error", perr)
			continue
		}
		// What occupants got: the archive's copy adds the sender's real JID.
		m.RemoveChildren(NSUser, "x")
		if m.Child(xmlstream.NSClient, "body") == nil {
			continue
		}
		got = append(got, histEntry{msg: m, id: am.StanzaID, at: am.Stamp, chars: len(m.String())})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sd.running = false
	if err != nil {
		sd.retryAt = r.svc.now().Add(historyRetry)
		r.svc.log.Warn("the room's history could not be read from its archive; newcomers get what was said since it was loaded", "room", owner, "error", err)
		return
	}
	if r.seed == sd {
		r.seed = nil
	}
	// Messages relayed since the room was loaded are in the history
	// already, and may be in the page too.
	if len(r.history) > 0 {
		first := r.history[0].id
		n := 0
		for n < len(got) && got[n].id < first {
			n++
		}
		got = got[:n]
	}
	for _, e := range got {
		r.historyBytes += e.chars
	}
	r.history = append(got, r.history...)
	r.trimHistory()
	r.svc.log.Debug("room history read from its archive", "room", owner, "messages", len(got))
}

// sendHistory sends the discussion history a newcomer asked for (XEP-0045
// §7.2.15): the room's last messages, at most its history length, limited
// further by maxstanzas, maxchars, seconds and since.
func (r *room) sendHistory(h *xmlstream.Element, to jid.JID) {
	limit := r.cfg.HistoryLength
	var maxChars = -1
	var after time.Time
	if h != nil {
		if s := h.Attr("maxstanzas"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				limit = min(limit, n)
			}
		}
		if s := h.Attr("maxchars"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				maxChars = n
			}
		}
		if s := h.Attr("seconds"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				after = r.svc.now().Add(-time.Duration(n) * time.Second)
			}
		}
		if s := h.Attr("since"); s != "" {
			if t, err := time.Parse(time.RFC3339, s); err == nil && t.After(after) {
				after = t
			}
		}
	}
	start := len(r.history)
	chars := 0
	for start > 0 && len(r.history)-start < limit {
		e := r.history[start-1]
		if !after.IsZero() && !e.at.After(after) {
			break
		}
		if maxChars >= 0 && chars+e.chars > maxChars {
			break
		}
		chars += e.chars
		start--
	}
	for _, e := range r.history[start:] {
		m := e.msg.Copy()
		m.SetAttr("to", to.String())
		m.AppendChild(xmlstream.NewElement(NSDelay, "delay").
			SetAttr("from", r.jid.String()).SetAttr("stamp", e.at.UTC().Format("2006-01-02T15:04:05.000Z")))
		r.send(m)
	}
}
