package sdk

import (
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/koi-im/koi/sdk/pb"
)

// Conversions between the Go types of backend.go and their wire messages.

func accessToPB(a Access) pb.Access {
	switch a {
	case AccessRead:
		return pb.Access_ACCESS_READ
	case AccessReadWrite:
		return pb.Access_ACCESS_READ_WRITE
	default:
		return pb.Access_ACCESS_NONE
	}
}

// accessFromPB maps a value a newer plugin might send that this host does
// not know to AccessNone: the core never uses what it does not understand.
func accessFromPB(a pb.Access) Access {
	switch a {
	case pb.Access_ACCESS_READ:
		return AccessRead
	case pb.Access_ACCESS_READ_WRITE:
		return AccessReadWrite
	default:
		return AccessNone
	}
}

func capsToPB(c Capabilities) *pb.Capabilities {
	return &pb.Capabilities{
		Auth:      accessToPB(c.Auth.Access),
		AuthScram: c.Auth.SCRAM,
		AuthList:  c.Auth.List,
		Roster:    accessToPB(c.Roster),
		Offline:   accessToPB(c.Offline),
		Vcard:     accessToPB(c.VCard),
		Private:   accessToPB(c.Private),

		Archive:         accessToPB(c.Archive.Access),
		ArchiveFulltext: c.Archive.FullText,
		ArchiveRetract:  c.Archive.Retract,
		Blocklist:       accessToPB(c.Blocklist),
		Tokens:          accessToPB(c.Tokens),
		Pubsub:          accessToPB(c.PubSub),
		Muc:             accessToPB(c.MUC),
		RosterBatch:     c.RosterBatch,
	}
}

func capsFromPB(c *pb.Capabilities) Capabilities {
	return Capabilities{
		Auth:      AuthCapabilities{Access: accessFromPB(c.GetAuth()), SCRAM: c.GetAuthScram(), List: c.GetAuthList()},
		Roster:    accessFromPB(c.GetRoster()),
		Offline:   accessFromPB(c.GetOffline()),
		VCard:     accessFromPB(c.GetVcard()),
		Private:   accessFromPB(c.GetPrivate()),
		Archive:   ArchiveCapabilities{Access: accessFromPB(c.GetArchive()), FullText: c.GetArchiveFulltext(), Retract: c.GetArchiveRetract()},
		Blocklist: accessFromPB(c.GetBlocklist()),
		Tokens:    accessFromPB(c.GetTokens()),
		PubSub:    accessFromPB(c.GetPubsub()),
		MUC:       accessFromPB(c.GetMuc()),

		RosterBatch: c.GetRosterBatch(),
	}
}

func rosterItemToPB(i RosterItem) *pb.RosterItem {
	return &pb.RosterItem{
		Jid:          i.JID,
		Name:         i.Name,
		Subscription: i.Subscription,
		Ask:          i.Ask,
		Approved:     i.Approved,
		Groups:       i.Groups,
	}
}

func rosterItemFromPB(i *pb.RosterItem) RosterItem {
	return RosterItem{
		JID:          i.GetJid(),
		Name:         i.GetName(),
		Subscription: i.GetSubscription(),
		Ask:          i.GetAsk(),
		Approved:     i.GetApproved(),
		Groups:       i.GetGroups(),
	}
}

func pendingToPB(p PendingSubscription) *pb.PendingSubscription {
	return &pb.PendingSubscription{Jid: p.JID, Stanza: p.Stanza}
}

func pendingFromPB(p *pb.PendingSubscription) PendingSubscription {
	return PendingSubscription{JID: p.GetJid(), Stanza: p.GetStanza()}
}

func rosterToPB(r RosterState) *pb.RosterState {
	out := &pb.RosterState{Version: r.Version}
	for _, i := range r.Items {
		out.Items = append(out.Items, rosterItemToPB(i))
	}
	for _, p := range r.Pending {
		out.Pending = append(out.Pending, pendingToPB(p))
	}
	return out
}

func rosterFromPB(r *pb.RosterState) RosterState {
	out := RosterState{Version: r.GetVersion()}
	for _, i := range r.GetItems() {
		out.Items = append(out.Items, rosterItemFromPB(i))
	}
	for _, p := range r.GetPending() {
		out.Pending = append(out.Pending, pendingFromPB(p))
	}
	return out
}

func rosterChangesToPB(cs []RosterChange) *pb.RosterChangesRequest {
	out := &pb.RosterChangesRequest{Changes: make([]*pb.RosterChange, len(cs))}
	for i, c := range cs {
		pc := &pb.RosterChange{Owner: c.Owner, Contact: c.Contact, DeleteItem: c.DeleteItem, DeletePending: c.DeletePending}
		if c.Item != nil {
			pc.Item = rosterItemToPB(*c.Item)
		}
		if c.Pending != nil {
			pc.Pending = pendingToPB(*c.Pending)
		}
		out.Changes[i] = pc
	}
	return out
}

func rosterChangesFromPB(r *pb.RosterChangesRequest) []RosterChange {
	out := make([]RosterChange, len(r.GetChanges()))
	for i, pc := range r.GetChanges() {
		c := RosterChange{Owner: pc.GetOwner(), Contact: pc.GetContact(), DeleteItem: pc.GetDeleteItem(), DeletePending: pc.GetDeletePending()}
		if pc.Item != nil {
			it := rosterItemFromPB(pc.Item)
			c.Item = &it
		}
		if pc.Pending != nil {
			p := pendingFromPB(pc.Pending)
			c.Pending = &p
		}
		out[i] = c
	}
	return out
}

// A zero Stamp travels as an absent timestamp so that it comes back as the
// zero time.Time rather than as 1970.
func offlineToPB(m OfflineMessage) *pb.OfflineMessage {
	out := &pb.OfflineMessage{Stanza: m.Stanza}
	if !m.Stamp.IsZero() {
		out.Stamp = timestamppb.New(m.Stamp)
	}
	return out
}

func offlineFromPB(m *pb.OfflineMessage) OfflineMessage {
	out := OfflineMessage{Stanza: m.GetStanza()}
	if m.GetStamp() != nil {
		out.Stamp = m.GetStamp().AsTime()
	}
	return out
}

func scramToPB(c SCRAMCredentials) *pb.SCRAMCredentialsResponse {
	return &pb.SCRAMCredentialsResponse{
		Salt:       c.Salt,
		Iterations: int64(c.Iterations),
		StoredKey:  c.StoredKey,
		ServerKey:  c.ServerKey,
	}
}

func scramFromPB(c *pb.SCRAMCredentialsResponse) SCRAMCredentials {
	return SCRAMCredentials{
		Salt:       c.GetSalt(),
		Iterations: int(c.GetIterations()),
		StoredKey:  c.GetStoredKey(),
		ServerKey:  c.GetServerKey(),
	}
}

func archivedToPB(m ArchivedMessage) *pb.ArchivedMessage {
	out := &pb.ArchivedMessage{
		Owner: m.Owner, StanzaId: m.StanzaID, Peer: m.Peer, PeerResource: m.PeerResource,
		Outgoing: m.Outgoing, Stanza: m.Stanza, Body: m.Body,
	}
	if !m.Stamp.IsZero() {
		out.Stamp = timestamppb.New(m.Stamp)
	}
	return out
}

func archivedFromPB(m *pb.ArchivedMessage) ArchivedMessage {
	out := ArchivedMessage{
		Owner: m.GetOwner(), StanzaID: m.GetStanzaId(), Peer: m.GetPeer(), PeerResource: m.GetPeerResource(),
		Outgoing: m.GetOutgoing(), Stanza: m.GetStanza(), Body: m.GetBody(),
	}
	if m.GetStamp() != nil {
		out.Stamp = m.GetStamp().AsTime()
	}
	return out
}

// archivedListToPB converts a batch with three allocations whatever its
// length, rather than two per message: the messages and their stamps are
// made in one array each (never copied afterwards: protobuf messages must
// not be), and the list points into them.
func archivedListToPB(msgs []ArchivedMessage) []*pb.ArchivedMessage {
	out := make([]*pb.ArchivedMessage, len(msgs))
	pbs := make([]pb.ArchivedMessage, len(msgs))
	stamps := make([]timestamppb.Timestamp, len(msgs))
	for i := range msgs {
		m, p := &msgs[i], &pbs[i]
		p.Owner, p.StanzaId, p.Peer, p.PeerResource = m.Owner, m.StanzaID, m.Peer, m.PeerResource
		p.Outgoing, p.Stanza, p.Body = m.Outgoing, m.Stanza, m.Body
		if !m.Stamp.IsZero() {
			stamps[i].Seconds, stamps[i].Nanos = m.Stamp.Unix(), int32(m.Stamp.Nanosecond())
			p.Stamp = &stamps[i]
		}
		out[i] = p
	}
	return out
}

func archivedListFromPB(msgs []*pb.ArchivedMessage) []ArchivedMessage {
	out := make([]ArchivedMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, archivedFromPB(m))
	}
	return out
}

func archiveQueryToPB(q ArchiveQuery) *pb.ArchiveQuery {
	return &pb.ArchiveQuery{
		Owner: q.Owner, With: q.With, WithResource: q.WithResource,
		AfterId: q.AfterID, BeforeId: q.BeforeID, Ids: q.IDs, Text: q.Text,
		After: q.After, Before: q.Before, Last: q.Last,
		Skip: int64(q.Skip), Max: int64(q.Max), Count: q.Count,
	}
}

// archiveQueryFromPB refuses numbers that do not fit an int rather than
// letting them wrap into something the backend would accept.
func archiveQueryFromPB(q *pb.ArchiveQuery) (ArchiveQuery, error) {
	if q.GetSkip() < 0 || q.GetSkip() > math.MaxInt32 || q.GetMax() < 0 || q.GetMax() > math.MaxInt32 {
		return ArchiveQuery{}, fmt.Errorf("%w: archive query skip %d / max %d out of range", ErrInvalid, q.GetSkip(), q.GetMax())
	}
	return ArchiveQuery{
		Owner: q.GetOwner(), With: q.GetWith(), WithResource: q.GetWithResource(),
		AfterID: q.GetAfterId(), BeforeID: q.GetBeforeId(), IDs: q.GetIds(), Text: q.GetText(),
		After: q.GetAfter(), Before: q.GetBefore(), Last: q.GetLast(),
		Skip: int(q.GetSkip()), Max: int(q.GetMax()), Count: q.GetCount(),
	}, nil
}

func archivePageToPB(p ArchivePage) *pb.ArchivePage {
	return &pb.ArchivePage{
		Messages: archivedListToPB(p.Messages), Complete: p.Complete,
		Count: int64(p.Count), Index: int64(p.Index),
	}
}

func archivePageFromPB(p *pb.ArchivePage) ArchivePage {
	return ArchivePage{
		Messages: archivedListFromPB(p.GetMessages()), Complete: p.GetComplete(),
		Count: int(p.GetCount()), Index: int(p.GetIndex()),
	}
}

func archivePrefsToPB(p ArchivePrefs) *pb.ArchivePrefs {
	return &pb.ArchivePrefs{DefaultMode: p.Default, Always: p.Always, Never: p.Never}
}

func archivePrefsFromPB(p *pb.ArchivePrefs) ArchivePrefs {
	return ArchivePrefs{Default: p.GetDefaultMode(), Always: p.GetAlways(), Never: p.GetNever()}
}

func tokenToPB(t Token) *pb.Token {
	return &pb.Token{
		Owner: t.Owner, Agent: t.Agent, Hash: t.Hash, Salt: t.Salt,
		Mechanism: t.Mechanism, Expires: timestamppb.New(t.Expires),
	}
}

func tokenFromPB(t *pb.Token) Token {
	return Token{
		Owner: t.GetOwner(), Agent: t.GetAgent(), Hash: t.GetHash(), Salt: t.GetSalt(),
		Mechanism: t.GetMechanism(), Expires: t.GetExpires().AsTime(),
	}
}

// A zero time travels as an absent timestamp and comes back zero, so that
// the backend, not the wire, refuses it.
func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromPB(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func formToPB(f map[string][]string) map[string]*pb.FormValues {
	if len(f) == 0 {
		return nil
	}
	out := make(map[string]*pb.FormValues, len(f))
	for k, v := range f {
		out[k] = &pb.FormValues{Values: v}
	}
	return out
}

func formFromPB(f map[string]*pb.FormValues) map[string][]string {
	if len(f) == 0 {
		return nil
	}
	out := make(map[string][]string, len(f))
	for k, v := range f {
		out[k] = v.GetValues()
	}
	return out
}

func pubsubNodeToPB(n PubSubNode) *pb.PubSubNode {
	return &pb.PubSubNode{Service: n.Service, Node: n.Node, Config: formToPB(n.Config), Created: timeToPB(n.Created)}
}

func pubsubNodeFromPB(n *pb.PubSubNode) PubSubNode {
	return PubSubNode{Service: n.GetService(), Node: n.GetNode(), Config: formFromPB(n.GetConfig()), Created: timeFromPB(n.GetCreated())}
}

func pubsubItemToPB(it PubSubItem) *pb.PubSubItem {
	return &pb.PubSubItem{Id: it.ID, Publisher: it.Publisher, Payload: it.Payload, Published: timeToPB(it.Published)}
}

func pubsubItemFromPB(it *pb.PubSubItem) PubSubItem {
	return PubSubItem{ID: it.GetId(), Publisher: it.GetPublisher(), Payload: it.GetPayload(), Published: timeFromPB(it.GetPublished())}
}

func pubsubQueryToPB(q PubSubItemQuery) *pb.PubSubItemQuery {
	return &pb.PubSubItemQuery{Service: q.Service, Node: q.Node, Ids: q.IDs, After: q.After, Before: q.Before, Max: int64(q.Max)}
}

// pubsubQueryFromPB refuses a Max that does not fit an int rather than
// letting it wrap into one the backend would accept.
func pubsubQueryFromPB(q *pb.PubSubItemQuery) (PubSubItemQuery, error) {
	if q.GetMax() < 0 || q.GetMax() > math.MaxInt32 {
		return PubSubItemQuery{}, fmt.Errorf("%w: pubsub item query max %d out of range", ErrInvalid, q.GetMax())
	}
	return PubSubItemQuery{
		Service: q.GetService(), Node: q.GetNode(), IDs: q.GetIds(),
		After: q.GetAfter(), Before: q.GetBefore(), Max: int(q.GetMax()),
	}, nil
}

func pubsubAffToPB(a PubSubAffiliation) *pb.PubSubAffiliation {
	return &pb.PubSubAffiliation{Service: a.Service, Node: a.Node, Jid: a.JID, Affiliation: a.Affiliation}
}

func pubsubAffFromPB(a *pb.PubSubAffiliation) PubSubAffiliation {
	return PubSubAffiliation{Service: a.GetService(), Node: a.GetNode(), JID: a.GetJid(), Affiliation: a.GetAffiliation()}
}

func pubsubSubToPB(s PubSubSubscription) *pb.PubSubSubscription {
	return &pb.PubSubSubscription{
		Service: s.Service, Node: s.Node, Jid: s.JID, Subid: s.SubID, State: s.State, Options: formToPB(s.Options),
	}
}

func pubsubSubFromPB(s *pb.PubSubSubscription) PubSubSubscription {
	return PubSubSubscription{
		Service: s.GetService(), Node: s.GetNode(), JID: s.GetJid(), SubID: s.GetSubid(), State: s.GetState(),
		Options: formFromPB(s.GetOptions()),
	}
}

// A room's config travels as fields sorted by var, so that the same map is
// the same message.
func mucRoomToPB(r MUCRoom) *pb.MUCRoom {
	out := &pb.MUCRoom{Room: r.Room, Subject: r.Subject, SubjectBy: r.SubjectBy}
	if !r.Created.IsZero() {
		out.Created = timestamppb.New(r.Created)
	}
	vars := make([]string, 0, len(r.Config))
	for v := range r.Config {
		vars = append(vars, v)
	}
	slices.Sort(vars)
	for _, v := range vars {
		out.Config = append(out.Config, &pb.MUCConfigField{Var: v, Values: r.Config[v]})
	}
	return out
}

// mucRoomFromPB refuses a config that names a var twice, which no Go map
// could have sent: the map would silently lose one.
func mucRoomFromPB(r *pb.MUCRoom) (MUCRoom, error) {
	out := MUCRoom{Room: r.GetRoom(), Subject: r.GetSubject(), SubjectBy: r.GetSubjectBy(),
		Config: make(map[string][]string, len(r.GetConfig()))}
	if r.GetCreated() != nil {
		out.Created = r.GetCreated().AsTime()
	}
	for _, f := range r.GetConfig() {
		if _, dup := out.Config[f.GetVar()]; dup {
			return MUCRoom{}, fmt.Errorf("%w: room %s: config field %q given twice", ErrInvalid, r.GetRoom(), f.GetVar())
		}
		out.Config[f.GetVar()] = f.GetValues()
	}
	return out, nil
}

func mucAffiliationToPB(a MUCAffiliation) *pb.MUCAffiliation {
	return &pb.MUCAffiliation{Room: a.Room, Jid: a.JID, Affiliation: a.Affiliation, Nick: a.Nick, Reason: a.Reason}
}

func mucAffiliationFromPB(a *pb.MUCAffiliation) MUCAffiliation {
	return MUCAffiliation{Room: a.GetRoom(), JID: a.GetJid(), Affiliation: a.GetAffiliation(), Nick: a.GetNick(), Reason: a.GetReason()}
}
