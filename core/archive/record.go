package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Journal record layouts. A record starts with its version, so that a
// later koi can tell the layouts apart; decodeRecord reads both, so that a
// journal written before an upgrade is replayed after it.
//
// Version 1: count, then per message its six strings (each a uvarint
// length and the bytes), stamp (Unix milliseconds, varint) and direction.
//
// Version 2 (written now) is version 1 except that each string is either
// a uvarint 0, "the same as this field of the previous message", or its
// length+1 and the bytes. The two copies of a message (the sender's and
// the recipient's) carry the same stanza and body, which are most of a
// record's bytes: version 2 writes, fsyncs, reads back and checksums them
// once. Decoding converts the record to one string and slices every field
// out of it: one allocation per record rather than six per message.
const (
	recordV1      = 1
	recordVersion = 2
)

// encodeRecord lays out a batch for the journal.
func encodeRecord(msgs []sdk.ArchivedMessage) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, m := range msgs {
		size += messageSize(m) + 6*binary.MaxVarintLen64
	}
	b := appendRecordHeader(make([]byte, 0, size), len(msgs))
	for i := range msgs {
		var prev *sdk.ArchivedMessage
		if i > 0 {
			prev = &msgs[i-1]
		}
		b = appendRecordMessage(b, &msgs[i], prev)
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

// appendRecordMessage appends m; prev is the message before it in the
// record, nil for the first.
func appendRecordMessage(b []byte, m, prev *sdk.ArchivedMessage) []byte {
	fields := [...]string{m.Owner, m.StanzaID, m.Peer, m.PeerResource, m.Stanza, m.Body}
	var before [6]string
	if prev != nil {
		before = [...]string{prev.Owner, prev.StanzaID, prev.Peer, prev.PeerResource, prev.Stanza, prev.Body}
	}
	for i, s := range fields {
		// Comparing two copies of one string is cheap: equal pointers
		// and lengths are found equal without reading the bytes.
		if prev != nil && s == before[i] {
			b = append(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(s))+1)
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, m.Stamp.UnixMilli())
	if m.Outgoing {
		return append(b, 1)
	}
	return append(b, 0)
}

var errRecord = errors.New("archive journal: malformed record")

// decodeRecord reverses encodeRecord, for records of either version.
func decodeRecord(b []byte) ([]sdk.ArchivedMessage, error) {
	if len(b) == 0 || (b[0] != recordV1 && b[0] != recordVersion) {
		return nil, fmt.Errorf("%w: unknown version", errRecord)
	}
	v2 := b[0] == recordVersion
	// One string for the record: every field is a piece of it.
	rec := string(b[1:])
	n, k := uvarint(rec)
	// Each message takes at least 8 bytes, which bounds a forged count.
	if k <= 0 || n == 0 || n > uint64(len(rec))/8 {
		return nil, fmt.Errorf("%w: bad message count", errRecord)
	}
	rec = rec[k:]
	msgs := make([]sdk.ArchivedMessage, n)
	for i := range msgs {
		m := &msgs[i]
		fields := [...]*string{&m.Owner, &m.StanzaID, &m.Peer, &m.PeerResource, &m.Stanza, &m.Body}
		for f, s := range fields {
			l, k := uvarint(rec)
			if k <= 0 {
				return nil, fmt.Errorf("%w: message %d is cut short", errRecord, i)
			}
			rec = rec[k:]
			if v2 {
				if l == 0 {
					if i == 0 {
						return nil, fmt.Errorf("%w: message 0 refers to a message before it", errRecord)
					}
					prev := [...]*string{&msgs[i-1].Owner, &msgs[i-1].StanzaID, &msgs[i-1].Peer,
						&msgs[i-1].PeerResource, &msgs[i-1].Stanza, &msgs[i-1].Body}
					*s = *prev[f]
					continue
				}
				l--
			}
			if l > uint64(len(rec)) {
				return nil, fmt.Errorf("%w: message %d is cut short", errRecord, i)
			}
			*s = rec[:l]
			rec = rec[l:]
		}
		ms, k := varint(rec)
		if k <= 0 || len(rec) < k+1 || rec[k] > 1 {
			return nil, fmt.Errorf("%w: message %d is cut short", errRecord, i)
		}
		m.Stamp = time.UnixMilli(ms).UTC()
		m.Outgoing = rec[k] == 1
		rec = rec[k+1:]
		if m.Owner == "" || m.StanzaID == "" {
			return nil, fmt.Errorf("%w: message %d has no owner or id", errRecord, i)
		}
	}
	if len(rec) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the messages", errRecord, len(rec))
	}
	return msgs, nil
}

// uvarint is binary.Uvarint on a string, which decodeRecord slices
// without copying.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// varint is binary.Varint on a string.
func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}
