package server

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/cluster"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/muc"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/sdk"
)

// startMUC serves each host's multi-user chat service on its muc_domain,
// loading the persistent rooms of hosts with a muc plugin. In a cluster
// (cl not nil) each room lives on one node (core/cluster, rooms.go). The
// returned function tells every occupant the service is going away.
func startMUC(ctx context.Context, cfg *config.Config, ph *pluginhost.Host, mods *modules.Server, cl *cluster.Cluster, log hclog.Logger) (func(context.Context), error) {
	stop := func(context.Context) {}
	mc := cfg.MUC
	if !mc.Enabled {
		return stop, nil
	}
	var admins []jid.JID
	for _, a := range mc.Admins {
		j, err := jid.Parse(a)
		if err != nil {
			return stop, fmt.Errorf("muc.admins: %q: %w", a, err)
		}
		admins = append(admins, j)
	}
	var services []*muc.Service
	for _, hc := range cfg.Hosts {
		if hc.MUCDomain == "" {
			continue
		}
		var store muc.Store
		if hc.MUC != "" {
			b, ok := ph.Backend(hc.MUC)
			if !ok {
				return stop, fmt.Errorf("host %q.muc: plugin %q is not running", hc.Name, hc.MUC)
			}
			if _, ok := any(b).(muc.Store); !ok {
				return stop, fmt.Errorf("host %q.muc: this koi cannot keep rooms in plugins", hc.Name)
			}
			store = pluginStore{ph: ph, name: hc.MUC}
		}
		svc, err := muc.New(log.Named(hc.MUCDomain), muc.Config{
			Domain: hc.MUCDomain, Host: hc.Name, Creators: mc.RoomCreation, Admins: admins,
			Defaults: muc.RoomConfig{
				Public: mc.Defaults.Public, Persistent: mc.Defaults.Persistent, MembersOnly: mc.Defaults.MembersOnly,
				Moderated: mc.Defaults.Moderated, WhoIs: mc.Defaults.WhoIs, AllowPM: mc.Defaults.AllowPM,
				HistoryLength: mc.Defaults.History, Logging: mc.Defaults.Logging,
			},
			MaxHistory: mc.MaxHistory, MaxOccupants: mc.MaxOccupants, MaxRooms: mc.MaxRooms,
			MaxRoomsPerUser: mc.MaxRoomsPerUser, JoinRate: mc.JoinRate, JoinWindow: mc.JoinWindow,
			LockTimeout: mc.LockTimeout,
			Archive:     hostArchive(mods, hc.Name),
			VCards:      hostVCards(mods, hc.Name),
		}, mods, store)
		if err != nil {
			return stop, fmt.Errorf("host %q.muc_domain: %w", hc.Name, err)
		}
		if cl != nil {
			svc.SetHomes(cl.Rooms(hc.MUCDomain, svc))
		}
		if err := svc.Load(ctx); err != nil {
			return stop, fmt.Errorf("host %q.muc: %w", hc.Name, err)
		}
		if err := mods.AddComponent(hc.MUCDomain, svc); err != nil {
			return stop, fmt.Errorf("host %q.muc_domain: %w", hc.Name, err)
		}
		if store == nil {
			log.Info("persistent rooms are kept in memory only: the host has no muc plugin", "host", hc.Name, "service", hc.MUCDomain)
		}
		services = append(services, svc)
	}
	return func(ctx context.Context) {
		for _, s := range services {
			s.Close(ctx)
		}
	}, nil
}

// hostArchive gives a host's rooms the host's message archive, looked up
// at each use: a reload may turn it on or off or move it to another
// plugin, and the rooms follow it through the same writer.
func hostArchive(mods *modules.Server, host string) func() muc.Archive {
	return func() muc.Archive {
		if a := archiveOf(mods, host); a != nil {
			return archiveView{a}
		}
		return nil
	}
}

// hostVCards gives a host's rooms the host's vcard backend for their
// vCards (avatars), looked up at each use like hostArchive; nil while the
// host has none it can write (a directory's vCards are read-only).
func hostVCards(mods *modules.Server, host string) func() muc.VCards {
	return func() muc.VCards {
		h := mods.Host(host)
		if h == nil || !h.VCard.On || !h.VCard.Writable || h.VCard.Backend == nil {
			return nil
		}
		return h.VCard.Backend
	}
}

// archiveView is a host's archive as packages muc and retraction use it.
type archiveView struct{ a *modules.Archive }

func (r archiveView) Reserve(ctx context.Context, n int) (*archive.Reservation, error) {
	res, err := r.a.Writer.Reserve(ctx, n)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

func (r archiveView) Sync(ctx context.Context, owner string) error {
	return r.a.Writer.Sync(ctx, owner)
}

func (r archiveView) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return r.a.Backend.QueryArchive(ctx, q)
}

func (r archiveView) FullText() bool { return r.a.FullText }

func (r archiveView) CanRetract() bool {
	_, ok := r.a.Backend.(sdk.ArchiveRetractor)
	return r.a.Retract && ok
}

func (r archiveView) Retract(ctx context.Context, owner, stanzaID, tombstone string) error {
	ar, ok := r.a.Backend.(sdk.ArchiveRetractor)
	if !ok || !r.a.Retract {
		return fmt.Errorf("the archive's plugin cannot retract messages: %w", sdk.ErrReadOnly)
	}
	return ar.RetractArchived(ctx, owner, stanzaID, tombstone)
}

func (r archiveView) Remove(ctx context.Context, owner string) error { return r.a.Remove(ctx, owner) }

// pluginStore is a host's muc plugin, looked up at each call: a reload
// that changes the plugin's block replaces its process and handle, and
// the rooms follow it.
type pluginStore struct {
	ph   *pluginhost.Host
	name string
}

func (p pluginStore) get() (muc.Store, error) {
	b, ok := p.ph.Backend(p.name)
	if !ok {
		return nil, fmt.Errorf("plugin %q: %w", p.name, sdk.ErrUnavailable)
	}
	return b, nil
}

func (p pluginStore) ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error) {
	st, err := p.get()
	if err != nil {
		return nil, err
	}
	return st.ListMUCRooms(ctx, service)
}

func (p pluginStore) GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error) {
	st, err := p.get()
	if err != nil {
		return nil, err
	}
	return st.GetMUCAffiliations(ctx, room)
}

func (p pluginStore) GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error) {
	st, err := p.get()
	if err != nil {
		return sdk.MUCRoom{}, err
	}
	return st.GetMUCRoom(ctx, room)
}

func (p pluginStore) PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error {
	st, err := p.get()
	if err != nil {
		return err
	}
	return st.PutMUCRoom(ctx, r)
}

func (p pluginStore) DeleteMUCRoom(ctx context.Context, room string) error {
	st, err := p.get()
	if err != nil {
		return err
	}
	return st.DeleteMUCRoom(ctx, room)
}

func (p pluginStore) SetMUCAffiliation(ctx context.Context, a sdk.MUCAffiliation) error {
	st, err := p.get()
	if err != nil {
		return err
	}
	return st.SetMUCAffiliation(ctx, a)
}
