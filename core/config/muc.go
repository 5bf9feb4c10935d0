package config

import (
	"strings"
	"time"
)

// muc reads the muc block: the group chat service and its rooms' defaults.
func (d *decoder) muc(v any) MUC {
	b := d.block([]string{"muc"}, v)
	m := MUC{
		Enabled:         b.boolean("enabled", true),
		RoomCreation:    b.enum("room_creation", "all", "all", "host", "admins"),
		MaxHistory:      int(b.integer("max_history", 100, false)),
		MaxOccupants:    int(b.integer("max_occupants", 1000, false)),
		MaxRooms:        int(b.integer("max_rooms", 0, false)),
		MaxRoomsPerUser: int(b.integer("max_rooms_per_user", 100, false)),
		JoinRate:        int(b.integer("join_rate", 200, false)),
		JoinWindow:      b.duration("join_window", time.Minute, true),
		LockTimeout:     b.duration("lock_timeout", 5*time.Minute, false),
		Defaults: MUCRoomDefaults{
			Public:      b.boolean("default_public", true),
			Persistent:  b.boolean("default_persistent", false),
			MembersOnly: b.boolean("default_members_only", false),
			Moderated:   b.boolean("default_moderated", false),
			WhoIs:       b.enum("default_whois", "moderators", "moderators", "anyone"),
			AllowPM:     b.enum("default_allow_pm", "anyone", "anyone", "participants", "moderators", "none"),
			History:     int(b.integer("default_history", 20, false)),
			Logging:     b.boolean("default_logging", true),
		},
	}
	for _, a := range b.list("admins") {
		if msg := checkBareJID(a); msg != "" {
			d.problem(b.at("admins"), "%s", msg)
			continue
		}
		m.Admins = append(m.Admins, a)
	}
	if m.Defaults.History > m.MaxHistory {
		d.problem(b.at("default_history"), "must not exceed muc.max_history (%d), got %d", m.MaxHistory, m.Defaults.History)
	}
	return m
}

// checkBareJID checks a bare JID like admin@example.com. It returns a
// message, or "".
func checkBareJID(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.ContainsAny(s, "/ ") || strings.Contains(domain, "@") {
		return "want bare JIDs like " + quote("admin@example.com") + ", got " + quote(s)
	}
	if err := checkDomain(domain); err != "" {
		return "the domain of " + quote(s) + " is not valid: " + err
	}
	return ""
}
