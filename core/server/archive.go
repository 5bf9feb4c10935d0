package server

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/archive/journal"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
)

// archiveWriterOptions turns the archive block into a writer's options.
func archiveWriterOptions(c config.Archive) archive.Options {
	return archive.Options{
		QueueSize: c.QueueSize, BatchSize: c.BatchSize, BatchBytes: c.BatchBytes,
		FlushInterval: c.FlushInterval, MaxInFlight: c.MaxInFlight, BlockTimeout: c.BlockTimeout,
	}
}

// journalPath is a host's journal file; the host name is escaped so that
// it is one file name whatever it contains.
func journalPath(dir, host string) string {
	return filepath.Join(dir, url.PathEscape(host)+".journal")
}

// archiveWriters are the archive writers of the hosts whose archive is
// on, one per host for as long as koi runs: a reload that switches a
// host's archive to another plugin redirects its writer (what is queued
// and journaled goes to the new one, as after a restart), one that turns
// an archive on starts a writer, one that turns it off stops it. Each
// writer streams batches to its plugin, with a journal unless
// journal_max_size is 0. Used under the server's reload lock.
type archiveWriters struct {
	cfg   config.Archive
	log   hclog.Logger
	slots map[string]*archiveSlot // by host name
}

type archiveSlot struct {
	w *archive.Writer
	b *pluginhost.Backend
}

func newArchiveWriters(cfg config.Archive, log hclog.Logger) *archiveWriters {
	return &archiveWriters{cfg: cfg, log: log, slots: map[string]*archiveSlot{}}
}

// archiveChange is what prepare found to do; commit does it.
type archiveChange struct {
	a        *archiveWriters
	hosts    []*modules.Host
	journals map[string]*journal.Journal // for the writers to start
	stop     []string                    // hosts whose archive goes off
}

// prepare opens the journals of the writers hosts need and do not have.
// A journal that cannot be opened (unwritable directory, another koi
// using it) fails it, with the journals it opened closed again: running
// without would refuse messages during the next outage that the operator
// asked to keep.
func (a *archiveWriters) prepare(hosts []*modules.Host) (*archiveChange, error) {
	ch := &archiveChange{a: a, hosts: hosts, journals: map[string]*journal.Journal{}}
	on := map[string]bool{}
	for _, h := range hosts {
		if !h.Archive.On {
			continue
		}
		if _, ok := h.Archive.Backend.Backend.(*pluginhost.Backend); !ok {
			continue
		}
		on[h.Name] = true
		if a.slots[h.Name] != nil || a.cfg.JournalMaxSize <= 0 {
			continue
		}
		j, err := journal.Open(journalPath(a.cfg.JournalDir, h.Name), a.cfg.JournalMaxSize, a.log.With("host", h.Name))
		if err != nil {
			ch.abort()
			return nil, fmt.Errorf("archive.journal_dir: host %q: %w", h.Name, err)
		}
		ch.journals[h.Name] = j
	}
	for name := range a.slots {
		if !on[name] {
			ch.stop = append(ch.stop, name)
		}
	}
	return ch, nil
}

func (ch *archiveChange) abort() {
	for _, j := range ch.journals {
		j.Close()
	}
}

// commit gives each host's archive its writer, before the hosts are
// served: a redirected one, a new one, or the one it had; it returns the
// writers of the hosts whose archive went off, to be closed once the new
// hosts are served.
func (ch *archiveChange) commit() (stopped []*archive.Writer) {
	a := ch.a
	for _, h := range ch.hosts {
		if !h.Archive.On {
			continue
		}
		b, ok := h.Archive.Backend.Backend.(*pluginhost.Backend)
		if !ok {
			continue
		}
		open := func(ctx context.Context) (archive.Stream, error) { return b.OpenArchiveStream(ctx) }
		slot := a.slots[h.Name]
		switch {
		case slot == nil:
			opt := archiveWriterOptions(a.cfg)
			if j := ch.journals[h.Name]; j != nil {
				opt.Journal = j
			}
			slot = &archiveSlot{w: archive.NewWriter(open, opt, a.log.With("host", h.Name)), b: b}
			a.slots[h.Name] = slot
		case slot.b != b:
			slot.w.Redirect(open)
			slot.b = b
		}
		h.Archive.Backend.Writer = slot.w
	}
	for _, name := range ch.stop {
		stopped = append(stopped, a.slots[name].w)
		delete(a.slots, name)
	}
	return stopped
}

// closeWriters flushes and stops ws.
func (a *archiveWriters) closeWriters(ctx context.Context, ws []*archive.Writer) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			if err := w.Close(ctx); err != nil {
				a.log.Error("archive writes lost", "error", err)
			}
			st := w.Stats()
			a.log.Debug("archive writer stopped", "stored", st.Stored, "dropped", st.Dropped,
				"reconnects", st.Reconnects, "journaled", st.Journaled)
		})
	}
	wg.Wait()
}

// closeAll flushes and stops every writer (at shutdown).
func (a *archiveWriters) closeAll(ctx context.Context) {
	var ws []*archive.Writer
	for _, s := range a.slots {
		ws = append(ws, s.w)
	}
	a.slots = map[string]*archiveSlot{}
	a.closeWriters(ctx, ws)
}
