package upload

import (
	"context"
	"path"
	"time"
)

// cleanupInterval is how often the clean-up pass runs: often enough that
// a file outlives its expiry by a small fraction of it, and that unused
// slots stop counting against a quota within the hour.
func cleanupInterval(expire time.Duration) time.Duration {
	if expire <= 0 {
		return time.Hour
	}
	return min(max(expire/24, time.Minute), time.Hour)
}

// pendingLifetime is how long after a slot is handed out its marker
// stands for an upload that may still arrive: its PUT URL's lifetime and
// the longest an upload begun in time may take.
func (s *Service) pendingLifetime(size int64) time.Duration {
	return uploadDeadline(Slot{Size: size, Expires: time.Unix(0, 0).Add(s.cfg.SlotLifetime)}).Sub(time.Unix(0, 0)) + time.Minute
}

// expired reports whether a file stored at modified is past its life.
func (s *Service) expired(modified, now time.Time) bool {
	return s.cfg.Expire > 0 && !now.Before(modified.Add(s.cfg.Expire))
}

// Run runs the clean-up pass at once and then periodically until ctx
// ends or the service is closed.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(cleanupInterval(s.cfg.Expire))
	defer t.Stop()
	for {
		if n, m, err := s.Cleanup(ctx); err != nil {
			if ctx.Err() == nil && s.ctx.Err() == nil {
				s.log.Warn("upload clean-up failed; it runs again later", "error", err)
			}
		} else if n+m > 0 {
			s.log.Info("upload clean-up", "files_deleted", n, "slots_released", m)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Cleanup deletes the files past their expiry, then the quota markers of
// slots whose file is gone or can no longer arrive. It returns how many
// files and markers it deleted.
func (s *Service) Cleanup(ctx context.Context) (files, markers int, err error) {
	// One instant for the whole pass: a marker old enough at now had its
	// upload deadline before the listing of files began, so a file it
	// stands for is in that listing.
	now := s.cfg.Now()
	live := map[string]bool{}
	err = s.cfg.Store.List(ctx, filesPrefix, func(i Info) error {
		id := path.Base(i.Key)
		if !s.expired(i.Modified, now) {
			live[id] = true
			return nil
		}
		if err := s.cfg.Store.Delete(ctx, i.Key); err != nil {
			return err
		}
		files++
		return nil
	})
	if err != nil {
		return files, 0, err
	}
	err = s.cfg.Store.List(ctx, ownersPrefix, func(i Info) error {
		id, size, ok := parseMarker(i.Key)
		if !ok || live[id] || now.Before(i.Modified.Add(s.pendingLifetime(size))) {
			return nil
		}
		if err := s.cfg.Store.Delete(ctx, i.Key); err != nil {
			return err
		}
		markers++
		return nil
	})
	return files, markers, err
}
