// Package archive is the core's side of the message archive: it assigns
// archive ids (XEP-0359 stanza-ids) and writes archived messages to the
// backend in batches, on a stream, without slowing down routing.
package archive

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// An archive id is 16 characters: 80 bits in lowercase Crockford base32,
// the first 48 bits a Unix time in milliseconds, the last 32 a sequence
// number. Base32 digits sort in the order of their values, so ids compare
// as strings in the order they were made, and that order is the order of
// time: a backend that pages by id pages by time.
const (
	idLen    = 16
	alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	maxMS    = 1<<48 - 1
)

// IDs makes archive ids. Ids from one IDs are unique and increasing, even
// if the clock steps back; a sequence that starts at a random value in
// every millisecond keeps ids of two processes (or of one process before
// and after a restart in the same millisecond) apart.
type IDs struct {
	now func() time.Time

	mu     sync.Mutex
	lastMS int64
	seq    uint32
}

// NewIDs returns an id generator on the system clock.
func NewIDs() *IDs { return &IDs{now: time.Now} }

// Next returns a new id and the time it stands for (millisecond precision,
// UTC), which is the time to archive the message under: the stamp of a
// message and its id then never disagree on the order.
func (g *IDs) Next() (string, time.Time) {
	var id [1]string
	var stamp [1]time.Time
	g.Fill(id[:], stamp[:])
	return id[0], stamp[0]
}

// Fill sets ids to new ids in increasing order and stamps (as long as
// ids) to the times they stand for, as len(ids) calls of Next would, with
// one reading of the clock: the copies of one message in two archives
// take their ids together.
func (g *IDs) Fill(ids []string, stamps []time.Time) {
	ms := g.now().UnixMilli()
	var raw [2]struct {
		ms  int64
		seq uint32
	}
	for len(ids) > 0 {
		n := min(len(ids), len(raw))
		g.mu.Lock()
		for i := range n {
			switch {
			case ms > g.lastMS:
				g.lastMS, g.seq = ms, randomSeq()
			default:
				// Same millisecond, or the clock stepped back: keep
				// counting in the last millisecond used, borrowing the
				// next one on overflow.
				g.seq++
				if g.seq == 0 {
					g.lastMS++
					g.seq = randomSeq()
				}
			}
			raw[i].ms, raw[i].seq = g.lastMS, g.seq
		}
		g.mu.Unlock()
		// One string holds the chunk's ids: one allocation, not n.
		var buf [len(raw) * idLen]byte
		for i := range n {
			encodeTo((*[idLen]byte)(buf[i*idLen:]), raw[i].ms, raw[i].seq)
		}
		all := string(buf[:n*idLen])
		for i := range n {
			ids[i], stamps[i] = all[i*idLen:(i+1)*idLen], time.UnixMilli(raw[i].ms).UTC()
		}
		ids, stamps = ids[n:], stamps[n:]
	}
}

// randomSeq starts a millisecond's sequence somewhere in the lower half
// (so that there is room to count up), never at 0, which FloorID keeps for
// itself.
func randomSeq() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 1
	}
	return binary.BigEndian.Uint32(b[:])&(1<<31-1) | 1
}

func encode(ms int64, seq uint32) string {
	var out [idLen]byte
	encodeTo(&out, ms, seq)
	return string(out[:])
}

func encodeTo(out *[idLen]byte, ms int64, seq uint32) {
	if ms < 0 {
		ms = 0
	}
	if ms > maxMS {
		ms = maxMS
	}
	hi := uint64(ms)<<16 | uint64(seq>>16) // 64 bits: 48 of time, 16 of seq
	lo := uint64(seq & 0xffff)             // 16 bits
	// 80 bits, most significant first, 5 bits per character.
	for i := idLen - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | (hi&31)<<11
		hi >>= 5
	}
}

// FloorID returns the id of sequence 0 in t's millisecond: no id is ever
// made with it, every id of that millisecond or later is greater, every id
// of an earlier one smaller. Time ranges become id ranges with it.
func FloorID(t time.Time) string {
	return encode(t.UnixMilli(), 0)
}

// AfterTime returns the exclusive lower id bound of the messages archived
// at or after t.
func AfterTime(t time.Time) string {
	ms := t.UnixMilli() // rounds down, also before 1970
	if time.UnixMilli(ms).Before(t) {
		// Stamps have millisecond precision: a message of ms is before t.
		ms++
	}
	return encode(ms, 0)
}

// BeforeTime returns the exclusive upper id bound of the messages archived
// at or before t.
func BeforeTime(t time.Time) string {
	return encode(t.UnixMilli()+1, 0)
}

// IDTime returns the time an id made by IDs stands for, and false for a
// string that is no such id.
func IDTime(id string) (time.Time, bool) {
	if len(id) != idLen {
		return time.Time{}, false
	}
	var hi, lo uint64
	for i := 0; i < idLen; i++ {
		v := indexOf(id[i])
		if v < 0 {
			return time.Time{}, false
		}
		// Shift the 80-bit (hi:lo16) value left by 5 and add v.
		hi = hi<<5 | lo>>11
		lo = (lo<<5 | uint64(v)) & 0xffff
	}
	return time.UnixMilli(int64(hi >> 16)).UTC(), true
}

func indexOf(c byte) int {
	for i := 0; i < len(alphabet); i++ {
		if alphabet[i] == c {
			return i
		}
	}
	return -1
}
