package roster

import "github.com/koi-im/koi/sdk"

// How an item's subscription state (RFC 6121 §2.1.2.5: none, to, from,
// both) changes when one direction is added or removed and the other is
// kept; the subscription state machine in core/modules drives them.

// AddFrom is sub with the contact subscribed to the owner's presence.
func AddFrom(sub string) string {
	if sub == sdk.SubTo || sub == sdk.SubBoth {
		return sdk.SubBoth
	}
	return sdk.SubFrom
}

// AddTo is sub with the owner subscribed to the contact's presence.
func AddTo(sub string) string {
	if sub == sdk.SubFrom || sub == sdk.SubBoth {
		return sdk.SubBoth
	}
	return sdk.SubTo
}

// RemoveFrom is sub without the contact's subscription to the owner.
func RemoveFrom(sub string) string {
	if sub == sdk.SubBoth || sub == sdk.SubTo {
		return sdk.SubTo
	}
	return sdk.SubNone
}

// RemoveTo is sub without the owner's subscription to the contact.
func RemoveTo(sub string) string {
	if sub == sdk.SubBoth || sub == sdk.SubFrom {
		return sdk.SubFrom
	}
	return sdk.SubNone
}
