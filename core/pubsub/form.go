package pubsub

import (
	"strings"

	"github.com/koi-im/koi/core/dataform"
)

// NSData is data forms (XEP-0004).
const NSData = dataform.NS

// parseBool reads an xs:boolean.
func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}
