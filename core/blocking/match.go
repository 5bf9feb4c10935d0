package blocking

import "github.com/koi-im/koi/core/jid"

// Matches reports whether a blocklist item covers j, by the JID rules of
// privacy lists that XEP-0191 §3.4 adopts (XEP-0016 §2.1):
//
//   - user@domain/resource covers only that full JID;
//   - user@domain covers it and each of its resources;
//   - domain/resource covers only that JID;
//   - domain covers the domain, each of its users and every resource.
func Matches(item, j jid.JID) bool {
	switch {
	case item.Local() != "" && item.Resource() != "":
		return j == item
	case item.Local() != "":
		return j.Bare() == item
	case item.Resource() != "":
		return j.Local() == "" && j.Domain() == item.Domain() && j.Resource() == item.Resource()
	default:
		return j.Domain() == item.Domain()
	}
}

// matchesAny reports whether one of items covers j.
func matchesAny(items []jid.JID, j jid.JID) bool {
	for _, it := range items {
		if Matches(it, j) {
			return true
		}
	}
	return false
}
