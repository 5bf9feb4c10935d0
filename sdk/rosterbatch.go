package sdk

import "fmt"

// CheckRosterChanges checks the shape of a batch for ApplyRosterChanges:
// owner and contact given, each (Owner, Contact) once, an item or pending
// subscription about its change's contact, no part both set and
// deleted, a known subscription state. A backend calls it before it writes anything; the error wraps
// ErrInvalid.
func CheckRosterChanges(changes []RosterChange) error {
	type key struct{ owner, contact string }
	seen := make(map[key]bool, len(changes))
	for i, c := range changes {
		k := key{c.Owner, c.Contact}
		switch {
		case c.Owner == "" || c.Contact == "":
			return fmt.Errorf("%w: roster change %d: owner and contact are required", ErrInvalid, i)
		case seen[k]:
			return fmt.Errorf("%w: roster change %d: %s already changes %s in this batch", ErrInvalid, i, c.Owner, c.Contact)
		case c.Item != nil && c.DeleteItem:
			return fmt.Errorf("%w: roster change %d: an item both set and deleted", ErrInvalid, i)
		case c.Pending != nil && c.DeletePending:
			return fmt.Errorf("%w: roster change %d: a pending subscription both set and deleted", ErrInvalid, i)
		case c.Item != nil && c.Item.JID != c.Contact:
			return fmt.Errorf("%w: roster change %d: item %q is not about contact %q", ErrInvalid, i, c.Item.JID, c.Contact)
		case c.Pending != nil && c.Pending.JID != c.Contact:
			return fmt.Errorf("%w: roster change %d: pending subscription %q is not from contact %q", ErrInvalid, i, c.Pending.JID, c.Contact)
		}
		if c.Item != nil {
			switch c.Item.Subscription {
			case SubNone, SubTo, SubFrom, SubBoth:
			default:
				return fmt.Errorf("%w: roster change %d: subscription %q, want none, to, from or both", ErrInvalid, i, c.Item.Subscription)
			}
		}
		seen[k] = true
	}
	return nil
}
