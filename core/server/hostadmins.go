package server

import (
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/spamreport"
	"github.com/koi-im/koi/core/xmlstream"
)

// isAdmin reads a host's admins from the hosts served now, so a reload
// that changes them is followed.
func isAdmin(mods *modules.Server) func(host string, user jid.JID) bool {
	return func(host string, user jid.JID) bool {
		h := mods.Host(host)
		return h != nil && slices.Contains(h.Admins, user.Bare().String())
	}
}

// adhocOnline is who is online, as the admin commands see it: the admin
// API's sessions and broadcast.
type adhocOnline struct {
	sessions adminSessions
	rt       *router.Router
}

func (o adhocOnline) OnlineJIDs(host string) []string {
	ss := o.sessions.Sessions(host)
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.JID
	}
	return out
}

func (o adhocOnline) Kick(full jid.JID, text string) bool { return o.sessions.Kick(full, text) }

func (o adhocOnline) Broadcast(host string, el *xmlstream.Element) int {
	return o.rt.Broadcast(host, el)
}

// spamReports hands the abuse reports attached to blocks (XEP-0377) to
// the reporter's host's admins, with the reported messages from the
// reporter's archive.
func spamReports(log hclog.Logger, mods *modules.Server) *spamreport.Service {
	return spamreport.New(spamreport.Config{
		Log: log,
		Admins: func(host string) []string {
			if h := mods.Host(host); h != nil {
				return h.Admins
			}
			return nil
		},
		Archive: func(host string) spamreport.Archive {
			if a := archiveOf(mods, host); a != nil {
				return a
			}
			return nil
		},
		Send: mods.SendMessage,
	})
}

// adminMessages is what the admin API sends: messages delivered as a
// client's would be, and announcements to the sessions online.
type adminMessages struct {
	*modules.Server
	rt *router.Router
}

func (a adminMessages) Broadcast(host string, el *xmlstream.Element) int {
	return a.rt.Broadcast(host, el)
}
