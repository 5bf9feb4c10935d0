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

// startArchiveWriters gives each host whose archive is on its writer: a
// stream of batches to the archive plugin, with a journal unless
// journal_max_size is 0. The returned function flushes and stops them. A
// journal that cannot be opened (unwritable directory, another koi using
// it) stops the start-up: running without it would refuse messages during
// the next outage that the operator asked to keep.
func startArchiveWriters(hosts []*modules.Host, cfg config.Archive, log hclog.Logger) (func(context.Context), error) {
	var writers []*archive.Writer
	var names []string
	stop := func(ctx context.Context) {
		var wg sync.WaitGroup
		for i, w := range writers {
			wg.Go(func() {
				if err := w.Close(ctx); err != nil {
					log.Error("archive writes lost at shutdown", "host", names[i], "error", err)
				}
				st := w.Stats()
				log.Debug("archive writer stopped", "host", names[i], "stored", st.Stored, "dropped", st.Dropped,
					"reconnects", st.Reconnects, "journaled", st.Journaled)
			})
		}
		wg.Wait()
	}
	// Every journal first, so that a failure leaves no writer running.
	type start struct {
		h *modules.Host
		b *pluginhost.Backend
		j *journal.Journal
	}
	var starts []start
	for _, h := range hosts {
		if !h.Archive.On {
			continue
		}
		b, ok := h.Archive.Backend.Backend.(*pluginhost.Backend)
		if !ok {
			continue
		}
		s := start{h: h, b: b}
		if cfg.JournalMaxSize > 0 {
			j, err := journal.Open(journalPath(cfg.JournalDir, h.Name), cfg.JournalMaxSize, log.With("host", h.Name))
			if err != nil {
				for _, s := range starts {
					s.j.Close()
				}
				return nil, fmt.Errorf("archive.journal_dir: host %q: %w", h.Name, err)
			}
			s.j = j
		}
		starts = append(starts, s)
	}
	for _, s := range starts {
		opt := archiveWriterOptions(cfg)
		if s.j != nil {
			opt.Journal = s.j
		}
		b := s.b
		open := func(ctx context.Context) (archive.Stream, error) { return b.OpenArchiveStream(ctx) }
		w := archive.NewWriter(open, opt, log.With("host", s.h.Name))
		s.h.Archive.Backend.Writer = w
		writers = append(writers, w)
		names = append(names, s.h.Name)
	}
	return stop, nil
}
