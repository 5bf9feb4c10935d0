// Package testbackend is a small in-memory backend implementing every
// feature interface of package sdk. Tests build its cmd into a real plugin
// binary to exercise the plugin transport end to end.
//
// A few owners and options trigger behaviour tests need: GetVCard for an
// owner "sleep-DURATION@…" waits that long (or until the call is cancelled)
// before answering, and for "panic@…" it panics.
package testbackend

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/memory"
)

// Options is the plugin's configuration block.
type Options struct {
	// Mode is "full" (the default: everything read-write), "readonly"
	// (only the reading interfaces, declared read-only) or "liar" (only the
	// reading interfaces, but declared read-write: Configure must fail).
	Mode string `json:"mode"`
	// Fail makes the factory fail with ErrUnavailable and this text.
	Fail string `json:"fail"`
	// Greeting is logged at info level when the backend is configured.
	Greeting string `json:"greeting"`
	// PingFailFile makes Ping fail while this file exists.
	PingFailFile string `json:"ping_fail_file"`
	// CloseMarker is a file written when the backend is closed.
	CloseMarker string `json:"close_marker"`
	// Iterations is the SCRAM iteration count (default 4096).
	Iterations int `json:"iterations"`
}

// New is the plugin's sdk.Factory.
func New(_ context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	var opts Options
	if err := cfg.Decode(&opts); err != nil {
		return nil, err
	}
	if opts.Fail != "" {
		return nil, fmt.Errorf("%w: %s", sdk.ErrUnavailable, opts.Fail)
	}
	if opts.Iterations == 0 {
		opts.Iterations = sdk.DefaultSCRAMIterations
	}
	m := &Memory{
		opts:    opts,
		log:     log,
		users:   map[string]user{},
		rosters: map[string]*sdk.RosterState{},
		offline: map[string][]sdk.OfflineMessage{},
		vcards:  map[string]string{},
		private: map[string]map[string]string{},
		blocked: map[string]map[string]bool{},
		tokens:  map[string][]sdk.Token{},
		rooms:   map[string]*mucRoom{},
		PubSub:  memory.NewPubSub(),
	}
	wd, _ := os.Getwd() // the host's tests check where it runs
	log.Info("testbackend configured", "greeting", opts.Greeting, "mode", cmp.Or(opts.Mode, "full"), "pid", os.Getpid(), "dir", wd)
	switch opts.Mode {
	case "", "full":
		return m, nil
	case "readonly":
		return readers{m: m, access: sdk.AccessRead, PubSub: m.PubSub}, nil
	case "liar":
		return readers{m: m, access: sdk.AccessReadWrite, PubSub: m.PubSub}, nil
	}
	return nil, fmt.Errorf("%w: config: mode %q: want full, readonly or liar", sdk.ErrInvalid, opts.Mode)
}

// Validate is the plugin's sdk.Validator.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	var opts Options
	if err := cfg.Decode(&opts); err != nil {
		return sdk.Validation{}, err
	}
	access := sdk.AccessReadWrite
	switch opts.Mode {
	case "", "full", "liar":
	case "readonly":
		access = sdk.AccessRead
	default:
		errs := &sdk.ConfigErrors{Prefix: "config"}
		errs.Add("mode", "%q: want full, readonly or liar", opts.Mode)
		return sdk.Validation{}, errs
	}
	caps := readers{access: access}.Capabilities()
	if opts.Mode == "" || opts.Mode == "full" {
		caps = (&Memory{}).Capabilities()
	}
	return sdk.Validation{Capabilities: caps}, nil
}

type user struct {
	password string
	scram    map[string]sdk.SCRAMCredentials
}

// Memory keeps everything in maps; it implements every feature interface.
type Memory struct {
	opts Options
	log  sdk.Logger

	mu      sync.Mutex
	users   map[string]user // host + "\x00" + user
	rosters map[string]*sdk.RosterState
	offline map[string][]sdk.OfflineMessage
	vcards  map[string]string
	private map[string]map[string]string // owner -> name + "\x00" + ns
	blocked map[string]map[string]bool   // owner -> blocked JIDs
	tokens  map[string][]sdk.Token       // owner -> FAST tokens
	rooms   map[string]*mucRoom          // room JID -> persistent MUC room

	// PubSub is the SDK's in-memory reference store, shared with koi's
	// hosts that have no pubsub backend.
	*memory.PubSub
}

// mucRoom is a stored room with its affiliations, which go with it.
type mucRoom struct {
	room sdk.MUCRoom
	affs map[string]sdk.MUCAffiliation // JID -> affiliation
}

// Capabilities implements sdk.Backend.
func (m *Memory) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		Auth:      sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster:    sdk.AccessReadWrite,
		Offline:   sdk.AccessReadWrite,
		VCard:     sdk.AccessReadWrite,
		Private:   sdk.AccessReadWrite,
		Blocklist: sdk.AccessReadWrite,
		Tokens:    sdk.AccessReadWrite,
		MUC:       sdk.AccessReadWrite,
		PubSub:    sdk.AccessReadWrite,

		RosterBatch: true,
	}
}

// Close implements sdk.Backend.
func (m *Memory) Close() error {
	m.log.Info("testbackend closed")
	if m.opts.CloseMarker != "" {
		return os.WriteFile(m.opts.CloseMarker, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	return nil
}

// Ping implements sdk.Pinger.
func (m *Memory) Ping(context.Context) error {
	if m.opts.PingFailFile == "" {
		return nil
	}
	if _, err := os.Stat(m.opts.PingFailFile); err == nil {
		return fmt.Errorf("%w: told to fail by %s", sdk.ErrUnavailable, m.opts.PingFailFile)
	}
	return nil
}

func userKey(host, name string) string { return host + "\x00" + name }

func checkUser(host, name string) error {
	if host == "" || name == "" {
		return fmt.Errorf("%w: empty host or user name", sdk.ErrInvalid)
	}
	return nil
}

// UserExists implements sdk.Auth.
func (m *Memory) UserExists(_ context.Context, host, name string) (bool, error) {
	if err := checkUser(host, name); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.users[userKey(host, name)]
	return ok, nil
}

// CheckPassword implements sdk.Auth.
func (m *Memory) CheckPassword(_ context.Context, host, name, password string) (bool, error) {
	if err := checkUser(host, name); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[userKey(host, name)]
	return ok && u.password == password, nil
}

// SCRAMCredentials implements sdk.Auth.
func (m *Memory) SCRAMCredentials(_ context.Context, host, name, hash string) (sdk.SCRAMCredentials, error) {
	if err := checkUser(host, name); err != nil {
		return sdk.SCRAMCredentials{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[userKey(host, name)]
	if !ok {
		return sdk.SCRAMCredentials{}, fmt.Errorf("user %s@%s: %w", name, host, sdk.ErrNotFound)
	}
	c, ok := u.scram[hash]
	if !ok {
		return sdk.SCRAMCredentials{}, fmt.Errorf("%w: unknown SCRAM hash %q", sdk.ErrInvalid, hash)
	}
	return c, nil
}

func (m *Memory) newUser(password string) (user, error) {
	u := user{password: password, scram: map[string]sdk.SCRAMCredentials{}}
	for _, h := range []string{sdk.HashSHA1, sdk.HashSHA256} {
		c, err := sdk.NewSCRAMCredentials(password, h, m.opts.Iterations)
		if err != nil {
			return user{}, err
		}
		u.scram[h] = c
	}
	return u, nil
}

// CreateUser implements sdk.AuthAdmin.
func (m *Memory) CreateUser(_ context.Context, host, name, password string) error {
	if err := checkUser(host, name); err != nil {
		return err
	}
	u, err := m.newUser(password)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[userKey(host, name)]; ok {
		return fmt.Errorf("user %s@%s: %w", name, host, sdk.ErrExists)
	}
	m.users[userKey(host, name)] = u
	return nil
}

// SetPassword implements sdk.AuthAdmin.
func (m *Memory) SetPassword(_ context.Context, host, name, password string) error {
	if err := checkUser(host, name); err != nil {
		return err
	}
	u, err := m.newUser(password)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[userKey(host, name)]; !ok {
		return fmt.Errorf("user %s@%s: %w", name, host, sdk.ErrNotFound)
	}
	m.users[userKey(host, name)] = u
	return nil
}

// DeleteUser implements sdk.AuthAdmin.
func (m *Memory) DeleteUser(_ context.Context, host, name string) error {
	if err := checkUser(host, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[userKey(host, name)]; !ok {
		return fmt.Errorf("user %s@%s: %w", name, host, sdk.ErrNotFound)
	}
	delete(m.users, userKey(host, name))
	return nil
}

// ListUsers implements sdk.AuthAdmin.
func (m *Memory) ListUsers(_ context.Context, host string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.users {
		if h, name, _ := strings.Cut(k, "\x00"); h == host {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// roster returns owner's roster, creating it; the caller holds m.mu.
func (m *Memory) roster(owner string) *sdk.RosterState {
	r, ok := m.rosters[owner]
	if !ok {
		r = &sdk.RosterState{Version: "0"}
		m.rosters[owner] = r
	}
	return r
}

func bump(r *sdk.RosterState) string {
	n, _ := strconv.Atoi(r.Version)
	r.Version = strconv.Itoa(n + 1)
	return r.Version
}

// GetRoster implements sdk.Roster.
func (m *Memory) GetRoster(_ context.Context, owner string) (sdk.RosterState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rosters[owner]
	if !ok {
		return sdk.RosterState{Version: "0"}, nil
	}
	return sdk.RosterState{
		Version: r.Version,
		Items:   slices.Clone(r.Items),
		Pending: slices.Clone(r.Pending),
	}, nil
}

// SetItem implements sdk.RosterWriter.
func (m *Memory) SetItem(_ context.Context, owner string, item sdk.RosterItem) (string, error) {
	if item.JID == "" {
		return "", fmt.Errorf("%w: roster item without JID", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.roster(owner)
	i := slices.IndexFunc(r.Items, func(it sdk.RosterItem) bool { return it.JID == item.JID })
	if i >= 0 {
		r.Items[i] = item
	} else {
		r.Items = append(r.Items, item)
	}
	return bump(r), nil
}

// DeleteItem implements sdk.RosterWriter.
func (m *Memory) DeleteItem(_ context.Context, owner, contact string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.roster(owner)
	i := slices.IndexFunc(r.Items, func(it sdk.RosterItem) bool { return it.JID == contact })
	if i < 0 {
		return "", fmt.Errorf("roster item %s: %w", contact, sdk.ErrNotFound)
	}
	r.Items = slices.Delete(r.Items, i, i+1)
	return bump(r), nil
}

// SetPending implements sdk.RosterWriter.
func (m *Memory) SetPending(_ context.Context, owner string, p sdk.PendingSubscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.roster(owner)
	r.Pending = slices.DeleteFunc(r.Pending, func(q sdk.PendingSubscription) bool { return q.JID == p.JID })
	r.Pending = append(r.Pending, p)
	return nil
}

// DeletePending implements sdk.RosterWriter.
func (m *Memory) DeletePending(_ context.Context, owner, contact string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.rosters[owner]; ok {
		r.Pending = slices.DeleteFunc(r.Pending, func(q sdk.PendingSubscription) bool { return q.JID == contact })
	}
	return nil
}

// ApplyRosterChanges implements sdk.RosterBatchWriter: the whole batch is
// checked before anything changes, and applied under one lock.
func (m *Memory) ApplyRosterChanges(_ context.Context, changes []sdk.RosterChange) (map[string]string, error) {
	if err := sdk.CheckRosterChanges(changes); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	versions := map[string]string{}
	bumped := map[string]bool{}
	for _, c := range changes {
		r := m.roster(c.Owner)
		i := slices.IndexFunc(r.Items, func(it sdk.RosterItem) bool { return it.JID == c.Contact })
		switch {
		case c.Item != nil && i >= 0:
			r.Items[i] = *c.Item
		case c.Item != nil:
			r.Items = append(r.Items, *c.Item)
		case c.DeleteItem && i >= 0:
			r.Items = slices.Delete(r.Items, i, i+1)
		}
		if c.Pending != nil || c.DeletePending {
			r.Pending = slices.DeleteFunc(r.Pending, func(q sdk.PendingSubscription) bool { return q.JID == c.Contact })
		}
		if c.Pending != nil {
			r.Pending = append(r.Pending, *c.Pending)
		}
		if c.ChangesItem() && !bumped[c.Owner] {
			bumped[c.Owner] = true
			versions[c.Owner] = bump(r)
		}
	}
	return versions, nil
}

// DeleteRoster implements sdk.RosterWriter.
func (m *Memory) DeleteRoster(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rosters, owner)
	return nil
}

// Store implements sdk.Offline.
func (m *Memory) Store(_ context.Context, owner string, msg sdk.OfflineMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offline[owner] = append(m.offline[owner], msg)
	return nil
}

// Count implements sdk.Offline.
func (m *Memory) Count(_ context.Context, owner string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.offline[owner]), nil
}

// Pop implements sdk.Offline.
func (m *Memory) Pop(_ context.Context, owner string) ([]sdk.OfflineMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msgs := m.offline[owner]
	delete(m.offline, owner)
	return msgs, nil
}

// DeleteAll implements sdk.Offline.
func (m *Memory) DeleteAll(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.offline, owner)
	return nil
}

// GetVCard implements sdk.VCard.
func (m *Memory) GetVCard(ctx context.Context, owner string) (string, error) {
	if err := misbehave(ctx, owner); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vcards[owner]
	if !ok {
		return "", fmt.Errorf("vcard of %s: %w", owner, sdk.ErrNotFound)
	}
	return v, nil
}

// misbehave implements the test owners described in the package comment.
func misbehave(ctx context.Context, owner string) error {
	local, _, _ := strings.Cut(owner, "@")
	if local == "panic" {
		panic("testbackend: asked to panic")
	}
	spec, ok := strings.CutPrefix(local, "sleep-")
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(spec)
	if err != nil {
		return fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetVCard implements sdk.VCardWriter.
func (m *Memory) SetVCard(_ context.Context, owner, vcard string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vcards[owner] = vcard
	return nil
}

// DeleteVCard implements sdk.VCardWriter.
func (m *Memory) DeleteVCard(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vcards, owner)
	return nil
}

// GetPrivate implements sdk.Private.
func (m *Memory) GetPrivate(_ context.Context, owner, name, namespace string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	doc, ok := m.private[owner][name+"\x00"+namespace]
	if !ok {
		return "", fmt.Errorf("private %s %s of %s: %w", name, namespace, owner, sdk.ErrNotFound)
	}
	return doc, nil
}

// SetPrivate implements sdk.PrivateWriter.
func (m *Memory) SetPrivate(_ context.Context, owner, name, namespace, xml string) error {
	if name == "" || namespace == "" {
		return fmt.Errorf("%w: private XML needs an element name and namespace", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.private[owner] == nil {
		m.private[owner] = map[string]string{}
	}
	m.private[owner][name+"\x00"+namespace] = xml
	return nil
}

// DeletePrivate implements sdk.PrivateWriter.
func (m *Memory) DeletePrivate(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.private, owner)
	return nil
}

// GetBlocklist implements sdk.Blocklist.
func (m *Memory) GetBlocklist(_ context.Context, owner string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := make([]string, 0, len(m.blocked[owner]))
	for j := range m.blocked[owner] {
		list = append(list, j)
	}
	slices.Sort(list)
	return list, nil
}

// Block implements sdk.BlocklistWriter.
func (m *Memory) Block(_ context.Context, owner string, jids []string) error {
	if slices.Contains(jids, "") {
		return fmt.Errorf("%w: an empty JID", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blocked[owner] == nil {
		m.blocked[owner] = map[string]bool{}
	}
	for _, j := range jids {
		m.blocked[owner][j] = true
	}
	return nil
}

// Unblock implements sdk.BlocklistWriter.
func (m *Memory) Unblock(_ context.Context, owner string, jids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range jids {
		delete(m.blocked[owner], j)
	}
	return nil
}

// UnblockAll implements sdk.BlocklistWriter.
func (m *Memory) UnblockAll(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blocked, owner)
	return nil
}

// GetTokens implements sdk.Tokens.
func (m *Memory) GetTokens(_ context.Context, owner, agent string) ([]sdk.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sdk.Token
	for _, t := range m.tokens[owner] {
		if t.Agent == agent {
			t.Hash, t.Salt = slices.Clone(t.Hash), slices.Clone(t.Salt)
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b sdk.Token) int { return b.Expires.Compare(a.Expires) })
	return out, nil
}

// PutToken implements sdk.TokensWriter.
func (m *Memory) PutToken(_ context.Context, t sdk.Token) error {
	if t.Owner == "" || t.Agent == "" || len(t.Hash) != 32 {
		return fmt.Errorf("%w: a token needs an owner, an agent and a 32-byte hash", sdk.ErrInvalid)
	}
	t.Hash, t.Salt = slices.Clone(t.Hash), slices.Clone(t.Salt)
	m.mu.Lock()
	defer m.mu.Unlock()
	list := slices.DeleteFunc(m.tokens[t.Owner], func(o sdk.Token) bool {
		return o.Agent == t.Agent && bytes.Equal(o.Hash, t.Hash)
	})
	m.tokens[t.Owner] = append(list, t)
	return nil
}

// DeleteToken implements sdk.TokensWriter.
func (m *Memory) DeleteToken(_ context.Context, owner, agent string, hash []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[owner] = slices.DeleteFunc(m.tokens[owner], func(o sdk.Token) bool {
		return o.Agent == agent && bytes.Equal(o.Hash, hash)
	})
	return nil
}

// DeleteTokens implements sdk.TokensWriter.
func (m *Memory) DeleteTokens(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, owner)
	return nil
}

// cloneRoom copies r deeply, so that neither the caller's map nor ours
// changes behind the other's back.
func cloneRoom(r sdk.MUCRoom) sdk.MUCRoom {
	cfg := make(map[string][]string, len(r.Config))
	for k, v := range r.Config {
		cfg[k] = slices.Clone(v)
	}
	r.Config = cfg
	return r
}

// GetMUCRoom implements sdk.MUC.
func (m *Memory) GetMUCRoom(_ context.Context, room string) (sdk.MUCRoom, error) {
	if _, err := sdk.MUCService(room); err != nil {
		return sdk.MUCRoom{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[room]
	if !ok {
		return sdk.MUCRoom{}, fmt.Errorf("room %s: %w", room, sdk.ErrNotFound)
	}
	return cloneRoom(r.room), nil
}

// ListMUCRooms implements sdk.MUC.
func (m *Memory) ListMUCRooms(_ context.Context, service string) ([]sdk.MUCRoom, error) {
	if service == "" {
		return nil, fmt.Errorf("%w: empty MUC service", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.MUCRoom{}
	for jid, r := range m.rooms {
		if s, _ := sdk.MUCService(jid); s == service {
			out = append(out, cloneRoom(r.room))
		}
	}
	slices.SortFunc(out, func(a, b sdk.MUCRoom) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}

// GetMUCAffiliations implements sdk.MUC.
func (m *Memory) GetMUCAffiliations(_ context.Context, room string) ([]sdk.MUCAffiliation, error) {
	if _, err := sdk.MUCService(room); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.MUCAffiliation{}
	if r, ok := m.rooms[room]; ok {
		for _, a := range r.affs {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b sdk.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

// PutMUCRoom implements sdk.MUCWriter.
func (m *Memory) PutMUCRoom(_ context.Context, r sdk.MUCRoom) error {
	if err := sdk.CheckMUCRoom(r); err != nil {
		return err
	}
	r = cloneRoom(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.rooms[r.Room]; ok {
		r.Created = old.room.Created
		old.room = r
		return nil
	}
	r.Created = r.Created.UTC()
	m.rooms[r.Room] = &mucRoom{room: r, affs: map[string]sdk.MUCAffiliation{}}
	return nil
}

// DeleteMUCRoom implements sdk.MUCWriter.
func (m *Memory) DeleteMUCRoom(_ context.Context, room string) error {
	if _, err := sdk.MUCService(room); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms, room)
	return nil
}

// SetMUCAffiliation implements sdk.MUCWriter.
func (m *Memory) SetMUCAffiliation(_ context.Context, a sdk.MUCAffiliation) error {
	if err := sdk.CheckMUCAffiliation(a); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[a.Room]
	if !ok {
		return fmt.Errorf("room %s: %w", a.Room, sdk.ErrNotFound)
	}
	if a.Affiliation == "none" {
		delete(r.affs, a.JID)
		return nil
	}
	r.affs[a.JID] = a
	return nil
}

// readers exposes only the reading interfaces of a Memory, declaring
// access for every feature.
type readers struct {
	m          *Memory
	access     sdk.Access
	sdk.PubSub // the store's reading half only
}

func (r readers) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		Auth:      sdk.AuthCapabilities{Access: r.access, SCRAM: true},
		Roster:    r.access,
		Offline:   r.access,
		VCard:     r.access,
		Private:   r.access,
		Blocklist: r.access,
		Tokens:    r.access,
		MUC:       r.access,
		PubSub:    r.access,
	}
}

func (r readers) Close() error { return r.m.Close() }

func (r readers) UserExists(ctx context.Context, host, name string) (bool, error) {
	return r.m.UserExists(ctx, host, name)
}

func (r readers) CheckPassword(ctx context.Context, host, name, password string) (bool, error) {
	return r.m.CheckPassword(ctx, host, name, password)
}

func (r readers) SCRAMCredentials(ctx context.Context, host, name, hash string) (sdk.SCRAMCredentials, error) {
	return r.m.SCRAMCredentials(ctx, host, name, hash)
}

func (r readers) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	return r.m.GetRoster(ctx, owner)
}

func (r readers) GetVCard(ctx context.Context, owner string) (string, error) {
	return r.m.GetVCard(ctx, owner)
}

func (r readers) GetPrivate(ctx context.Context, owner, name, namespace string) (string, error) {
	return r.m.GetPrivate(ctx, owner, name, namespace)
}

func (r readers) GetBlocklist(ctx context.Context, owner string) ([]string, error) {
	return r.m.GetBlocklist(ctx, owner)
}

func (r readers) GetTokens(ctx context.Context, owner, agent string) ([]sdk.Token, error) {
	return r.m.GetTokens(ctx, owner, agent)
}

func (r readers) GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error) {
	return r.m.GetMUCRoom(ctx, room)
}

func (r readers) ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error) {
	return r.m.ListMUCRooms(ctx, service)
}

func (r readers) GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error) {
	return r.m.GetMUCAffiliations(ctx, room)
}

// Offline is one interface for reads and writes, so a read-only backend
// still implements it; the plugin refuses Store and DeleteAll.
func (r readers) Store(ctx context.Context, owner string, msg sdk.OfflineMessage) error {
	return r.m.Store(ctx, owner, msg)
}

func (r readers) Count(ctx context.Context, owner string) (int, error) { return r.m.Count(ctx, owner) }

func (r readers) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	return r.m.Pop(ctx, owner)
}

func (r readers) DeleteAll(ctx context.Context, owner string) error {
	return r.m.DeleteAll(ctx, owner)
}

var (
	_ sdk.Auth            = (*Memory)(nil)
	_ sdk.AuthAdmin       = (*Memory)(nil)
	_ sdk.Roster          = (*Memory)(nil)
	_ sdk.RosterWriter    = (*Memory)(nil)
	_ sdk.Offline         = (*Memory)(nil)
	_ sdk.VCard           = (*Memory)(nil)
	_ sdk.VCardWriter     = (*Memory)(nil)
	_ sdk.Private         = (*Memory)(nil)
	_ sdk.PrivateWriter   = (*Memory)(nil)
	_ sdk.Pinger          = (*Memory)(nil)
	_ sdk.Blocklist       = (*Memory)(nil)
	_ sdk.BlocklistWriter = (*Memory)(nil)
	_ sdk.Tokens          = (*Memory)(nil)
	_ sdk.TokensWriter    = (*Memory)(nil)
	_ sdk.MUC             = (*Memory)(nil)
	_ sdk.MUCWriter       = (*Memory)(nil)
)
