package sdk

import (
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
		Roster:    accessToPB(c.Roster),
		Offline:   accessToPB(c.Offline),
		Vcard:     accessToPB(c.VCard),
		Private:   accessToPB(c.Private),
	}
}

func capsFromPB(c *pb.Capabilities) Capabilities {
	return Capabilities{
		Auth:    AuthCapabilities{Access: accessFromPB(c.GetAuth()), SCRAM: c.GetAuthScram()},
		Roster:  accessFromPB(c.GetRoster()),
		Offline: accessFromPB(c.GetOffline()),
		VCard:   accessFromPB(c.GetVcard()),
		Private: accessFromPB(c.GetPrivate()),
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
