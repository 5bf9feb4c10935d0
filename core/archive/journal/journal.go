// Package journal is a durable first-in, first-out queue of records in one
// append-only file: the place where archive batches wait while the archive
// backend cannot take them.
//
// Each record is framed as a 4-byte little-endian payload length, a 4-byte
// CRC-32C (Castagnoli) of the length and the payload, then the payload. An
// Append returns only after the record is fsynced, so a record that was
// appended survives a crash of the process or the machine. Records are read
// back in order with Next and released with Ack once their consumer has
// stored them elsewhere; when every record is released the file is
// truncated to nothing. A crash in the middle of an Append leaves a torn
// last record, which Open recognises by its length or CRC and drops with a
// warning.
//
// A Journal is safe for concurrent use, though its consumer (the archive
// writer) calls it from one goroutine.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// headerSize is the length and CRC in front of every payload.
const headerSize = 8

// MaxRecord bounds one record's payload. A length beyond it in the file is
// damage, not a record.
const MaxRecord = 64 << 20

// maxKeptBuffer bounds the write buffer a Journal keeps between Appends.
const maxKeptBuffer = 8 << 20

// ErrFull means the record does not fit under the journal's size bound.
var ErrFull = errors.New("journal full")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Journal is one journal file. The zero value is not usable; see Open.
type Journal struct {
	path string
	max  int64
	log  hclog.Logger

	mu      sync.Mutex
	f       *os.File
	size    int64 // end of the last whole record: where the next one goes
	head    int64 // start of the oldest record not acknowledged
	read    int64 // start of the record Next returns
	records int   // records in [head, size)
	unread  int   // records in [read, size)
	skipped [][2]int64
	wbuf    []byte // Append's write buffer, reused
}

// Open opens (creating it and its directory if needed) the journal at
// path, bounded to maxBytes of records. It takes an exclusive lock on the
// file, so two processes never share a journal, and checks every record:
// a damaged tail, which a crash in the middle of an Append leaves, is cut
// off with a warning on log (which may be nil).
func Open(path string, maxBytes int64, log hclog.Logger) (*Journal, error) {
	if maxBytes < headerSize+1 {
		return nil, fmt.Errorf("journal %s: size bound %d is too small", path, maxBytes)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s is in use by another process: %w", path, err)
	}
	j := &Journal{path: path, max: maxBytes, log: log, f: f}
	if err := j.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// recover finds the whole records and cuts off whatever follows them.
func (j *Journal) recover() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	end := st.Size()
	var off int64
	var hdr [headerSize]byte
	for off < end {
		n, _, why := j.check(off, end, hdr[:])
		if why != "" {
			j.log.Warn("archive journal: dropping a damaged record at its end (a crash while writing it)",
				"file", j.path, "offset", off, "bytes", end-off, "reason", why)
			if err := j.f.Truncate(off); err != nil {
				return fmt.Errorf("journal %s: cutting the damaged tail: %w", j.path, err)
			}
			if err := j.f.Sync(); err != nil {
				return fmt.Errorf("journal %s: %w", j.path, err)
			}
			break
		}
		off += headerSize + int64(n)
		j.records++
	}
	j.size = off
	j.unread = j.records
	return nil
}

// check reads and verifies the record at off; why is "" for a whole one.
// After a CRC mismatch n is still the record's length.
func (j *Journal) check(off, end int64, hdr []byte) (n uint32, payload []byte, why string) {
	if end-off < headerSize {
		return 0, nil, "short header"
	}
	if _, err := j.f.ReadAt(hdr, off); err != nil {
		return 0, nil, "unreadable header: " + err.Error()
	}
	n = binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > MaxRecord {
		return 0, nil, fmt.Sprintf("impossible length %d", n)
	}
	if int64(n) > end-off-headerSize {
		return 0, nil, "short payload"
	}
	payload = make([]byte, n)
	if _, err := j.f.ReadAt(payload, off+headerSize); err != nil {
		return 0, nil, "unreadable payload: " + err.Error()
	}
	if sum(hdr[0:4], payload) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return n, nil, "CRC mismatch"
	}
	return n, payload, ""
}

func sum(length, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, length)
	return crc32.Update(c, castagnoli, payload)
}

// Append writes records, in order, with one write and one fsync: all of
// them or none. ErrFull: the records not yet acknowledged and these would
// exceed the size bound. On any error the journal is as it was.
func (j *Journal) Append(records ...[]byte) error {
	if len(records) == 0 {
		return errors.New("journal: no record to append")
	}
	var need int64
	for _, p := range records {
		if len(p) == 0 || len(p) > MaxRecord {
			return fmt.Errorf("journal: record of %d bytes (1 to %d allowed)", len(p), MaxRecord)
		}
		need += headerSize + int64(len(p))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal: closed")
	}
	if j.size-j.head+need > j.max {
		return fmt.Errorf("%w (%d of %d bytes waiting, %d more asked)", ErrFull, j.size-j.head, j.max, need)
	}
	if j.size+need > j.max {
		// The acknowledged records at the front are in the way: move
		// the rest to a new file.
		if err := j.compactLocked(); err != nil {
			return err
		}
	}
	// One buffer for the whole write, kept for the next Append: a spill
	// round writes many records, many times a second under load.
	buf := j.wbuf[:0]
	if int64(cap(buf)) < need {
		// At once rather than by doubling, which would copy megabytes
		// several times over.
		buf = make([]byte, 0, need)
	}
	for _, p := range records {
		var hdr [headerSize]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(p)))
		binary.LittleEndian.PutUint32(hdr[4:8], sum(hdr[0:4], p))
		buf = append(buf, hdr[:]...)
		buf = append(buf, p...)
	}
	if cap(buf) <= maxKeptBuffer {
		j.wbuf = buf
	}
	if _, err := j.f.WriteAt(buf, j.size); err != nil {
		j.undoLocked()
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		j.undoLocked()
		return fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	j.size += need
	j.records += len(records)
	j.unread += len(records)
	return nil
}

// undoLocked removes a partly written record, so that a later Append
// does not follow garbage; if that fails too, Open will cut it off.
func (j *Journal) undoLocked() {
	if err := j.f.Truncate(j.size); err == nil {
		j.f.Sync()
	}
}

// Next returns the oldest record not yet returned since Open or the last
// Rewind, and end, the position to Ack it with. ok is false when there is
// none. A record found damaged now (the disk changed under us) is skipped
// with an error log; a damaged length cuts the journal there.
func (j *Journal) Next() (payload []byte, end int64, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var hdr [headerSize]byte
	for j.f != nil && j.read < j.size {
		n, p, why := j.check(j.read, j.size, hdr[:])
		if why == "" {
			j.read += headerSize + int64(n)
			j.unread--
			return p, j.read, true
		}
		if why == "CRC mismatch" {
			j.log.Error("archive journal: a record changed on disk since it was written; its messages are lost",
				"file", j.path, "offset", j.read, "bytes", headerSize+int64(n))
			start := j.read
			j.read += headerSize + int64(n)
			j.unread--
			j.skipped = append(j.skipped, [2]int64{start, j.read})
			j.advanceLocked()
			continue
		}
		j.log.Error("archive journal: the file is damaged; the records after this point are lost",
			"file", j.path, "offset", j.read, "bytes", j.size-j.read, "reason", why)
		j.size = j.read
		j.records -= j.unread
		j.unread = 0
		j.f.Truncate(j.size)
		j.advanceLocked()
	}
	return nil, 0, false
}

// Ack releases every record up to end (a value Next returned). Once no
// record is left the file is truncated to nothing.
func (j *Journal) Ack(end int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if end <= j.head || end > j.read {
		return fmt.Errorf("journal: acknowledgement of %d outside (%d, %d]", end, j.head, j.read)
	}
	var hdr [headerSize]byte
	for j.head < end {
		if len(j.skipped) > 0 && j.skipped[0][0] == j.head {
			j.head = j.skipped[0][1]
			j.skipped = j.skipped[1:]
			j.records--
			continue
		}
		if _, err := j.f.ReadAt(hdr[:4], j.head); err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
		j.head += headerSize + int64(binary.LittleEndian.Uint32(hdr[0:4]))
		j.records--
	}
	j.advanceLocked()
	return nil
}

// advanceLocked steps over skipped records at the head and empties the
// file when nothing is left in it.
func (j *Journal) advanceLocked() {
	for len(j.skipped) > 0 && j.skipped[0][0] == j.head {
		j.head = j.skipped[0][1]
		j.skipped = j.skipped[1:]
		j.records--
	}
	if j.records > 0 || j.f == nil {
		return
	}
	if err := j.f.Truncate(0); err != nil {
		j.log.Warn("archive journal: cannot truncate the replayed file; it is compacted later", "file", j.path, "error", err)
		return
	}
	j.f.Sync()
	j.size, j.head, j.read, j.unread, j.skipped = 0, 0, 0, 0, nil
}

// Rewind makes Next start again at the oldest record not acknowledged:
// the records returned since were not stored.
func (j *Journal) Rewind() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.read = j.head
	j.unread = j.records
	j.skipped = nil
}

// compactLocked copies the records not acknowledged to a new file that
// replaces this one: write, fsync, rename, fsync the directory.
func (j *Journal) compactLocked() error {
	tmp := j.path + ".compact"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal compaction: %w", err)
	}
	fail := func(err error) error {
		nf.Close()
		os.Remove(tmp)
		return fmt.Errorf("journal compaction: %w", err)
	}
	if _, err := io.Copy(nf, io.NewSectionReader(j.f, j.head, j.size-j.head)); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := syscall.Flock(int(nf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		d.Sync()
		d.Close()
	}
	j.f.Close()
	j.f = nf
	shift := j.head
	j.size -= shift
	j.read -= shift
	for i := range j.skipped {
		j.skipped[i][0] -= shift
		j.skipped[i][1] -= shift
	}
	j.head = 0
	return nil
}

// Len reports the records not acknowledged and the bytes they take.
func (j *Journal) Len() (records int, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.records, j.size - j.head
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Close closes the file; the records not acknowledged stay in it for the
// next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
