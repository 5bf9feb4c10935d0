package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/sdk"
)

// recordVersion starts every journal record, so that a later koi can
// tell this layout from its own.
const recordVersion = 1

// encodeRecord lays out a batch for the journal: version, count, then per
// message its strings (length-prefixed), stamp in Unix milliseconds and
// direction.
func encodeRecord(msgs []sdk.ArchivedMessage) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, m := range msgs {
		size += messageSize(m) + 6*binary.MaxVarintLen64
	}
	b := appendRecordHeader(make([]byte, 0, size), len(msgs))
	for i := range msgs {
		b = appendRecordMessage(b, &msgs[i])
	}
	return b
}

// appendRecordHeader starts a record of n messages on b; n calls of
// appendRecordMessage complete it. The two let a caller encode into a
// buffer it reuses, from whatever holds its messages.
func appendRecordHeader(b []byte, n int) []byte {
	b = append(b, recordVersion)
	return binary.AppendUvarint(b, uint64(n))
}

func appendRecordMessage(b []byte, m *sdk.ArchivedMessage) []byte {
	for _, s := range [...]string{m.Owner, m.StanzaID, m.Peer, m.PeerResource, m.Stanza, m.Body} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, m.Stamp.UnixMilli())
	if m.Outgoing {
		return append(b, 1)
	}
	return append(b, 0)
}

var errRecord = errors.New("archive journal: malformed record")

// decodeRecord reverses encodeRecord.
func decodeRecord(b []byte) ([]sdk.ArchivedMessage, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, fmt.Errorf("%w: unknown version", errRecord)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	// Each message takes at least 8 bytes, which bounds a forged count.
	if k <= 0 || n == 0 || n > uint64(len(b))/8 {
		return nil, fmt.Errorf("%w: bad message count", errRecord)
	}
	b = b[k:]
	msgs := make([]sdk.ArchivedMessage, n)
	for i := range msgs {
		m := &msgs[i]
		for _, s := range []*string{&m.Owner, &m.StanzaID, &m.Peer, &m.PeerResource, &m.Stanza, &m.Body} {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, fmt.Errorf("%w: message %d is cut short", errRecord, i)
			}
			*s = string(b[k : k+int(l)])
			b = b[k+int(l):]
		}
		ms, k := binary.Varint(b)
		if k <= 0 || len(b) < k+1 || b[k] > 1 {
			return nil, fmt.Errorf("%w: message %d is cut short", errRecord, i)
		}
		m.Stamp = time.UnixMilli(ms).UTC()
		m.Outgoing = b[k] == 1
		b = b[k+1:]
		if m.Owner == "" || m.StanzaID == "" {
			return nil, fmt.Errorf("%w: message %d has no owner or id", errRecord, i)
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the messages", errRecord, len(b))
	}
	return msgs, nil
}
