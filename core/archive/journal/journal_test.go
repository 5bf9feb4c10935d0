package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func open(t *testing.T, path string, max int64) (*Journal, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	j, err := Open(path, max, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, &logs
}

func rec(i int) []byte { return fmt.Appendf(nil, "record %03d", i) }

// drain reads every record Next gives and returns them with the last end.
func drain(j *Journal) (got []string, end int64) {
	for {
		p, e, ok := j.Next()
		if !ok {
			return got, end
		}
		got = append(got, string(p))
		end = e
	}
}

func TestAppendNextAckInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j", "host.journal")
	j, _ := open(t, path, 1<<20)
	for i := range 5 {
		if err := j.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	var ends []int64
	for i := range 5 {
		p, end, ok := j.Next()
		if !ok || string(p) != string(rec(i)) {
			t.Fatalf("record %d: %q %v", i, p, ok)
		}
		ends = append(ends, end)
	}
	if _, _, ok := j.Next(); ok {
		t.Fatal("a sixth record")
	}
	// A broken stream: the unacknowledged records come again.
	if err := j.Ack(ends[1]); err != nil {
		t.Fatal(err)
	}
	j.Rewind()
	got, _ := drain(j)
	if want := []string{"record 002", "record 003", "record 004"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after rewind: %v, want %v", got, want)
	}
	if n, b := j.Len(); n != 3 || b == 0 {
		t.Fatalf("Len = %d, %d", n, b)
	}
	if err := j.Ack(ends[4]); err != nil {
		t.Fatal(err)
	}
	if n, b := j.Len(); n != 0 || b != 0 {
		t.Fatalf("Len after the last ack = %d, %d", n, b)
	}
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatalf("replayed journal is %d bytes, want truncated", st.Size())
	}
	if err := j.Ack(ends[4]); err == nil {
		t.Fatal("an acknowledgement past the records was accepted")
	}
}

func TestRecordsSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.journal")
	j, _ := open(t, path, 1<<20)
	for i := range 3 {
		if err := j.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, end, _ := j.Next()
	j.Ack(end) // record 0 stored
	j.Close()

	j2, logs := open(t, path, 1<<20)
	got, _ := drain(j2)
	// Acknowledgements are not persisted: record 0 comes again, and the
	// consumer's idempotence absorbs it.
	if want := "record 000,record 001,record 002"; strings.Join(got, ",") != want {
		t.Fatalf("after restart: %v, want %s", got, want)
	}
	if logs.Len() != 0 {
		t.Fatalf("a clean journal logged: %s", logs)
	}
	if err := j2.Append(rec(3)); err != nil {
		t.Fatal(err)
	}
	if p, _, ok := j2.Next(); !ok || string(p) != "record 003" {
		t.Fatalf("new record after restart: %q %v", p, ok)
	}
}

func TestTornTailIsDroppedWithAWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string, size int64)
	}{
		{"half a header", func(t *testing.T, path string, size int64) { appendBytes(t, path, []byte{9, 0, 0}) }},
		{"short payload", func(t *testing.T, path string, size int64) {
			os.Truncate(path, size-3)
		}},
		{"bad CRC", func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			f.WriteAt([]byte("X"), size-1)
			f.Close()
		}},
		{"zeroed tail", func(t *testing.T, path string, size int64) { appendBytes(t, path, make([]byte, 4096)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "host.journal")
			j, _ := open(t, path, 1<<20)
			for i := range 3 {
				if err := j.Append(rec(i)); err != nil {
					t.Fatal(err)
				}
			}
			_, size := j.Len()
			j.Close()
			tc.tear(t, path, size)

			j2, logs := open(t, path, 1<<20)
			got, _ := drain(j2)
			want := "record 000,record 001,record 002"
			if tc.name == "short payload" || tc.name == "bad CRC" {
				want = "record 000,record 001"
			}
			if strings.Join(got, ",") != want {
				t.Fatalf("records: %v, want %s", got, want)
			}
			if !strings.Contains(logs.String(), "dropping a damaged record") {
				t.Fatalf("no warning: %q", logs)
			}
			// The damage is gone from the file: a new record follows the
			// whole ones and is found after another restart.
			if err := j2.Append(rec(9)); err != nil {
				t.Fatal(err)
			}
			j2.Close()
			j3, logs3 := open(t, path, 1<<20)
			got, _ = drain(j3)
			if strings.Join(got, ",") != want+",record 009" || logs3.Len() != 0 {
				t.Fatalf("after repair: %v, logs %q", got, logs3)
			}
		})
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestSizeBoundAndCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.journal")
	per := int64(headerSize + len(rec(0)))
	j, _ := open(t, path, 4*per)
	for i := range 4 {
		if err := j.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(rec(4)); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth record: %v, want ErrFull", err)
	}
	// Two records stored: their room is reused by moving the other two
	// to a new file.
	j.Next()
	_, end, _ := j.Next()
	if err := j.Ack(end); err != nil {
		t.Fatal(err)
	}
	p3, _, _ := j.Next() // record 2, read before the compaction
	for i := 4; i < 6; i++ {
		if err := j.Append(rec(i)); err != nil {
			t.Fatalf("record %d after acks: %v", i, err)
		}
	}
	if st, _ := os.Stat(path); st.Size() != 4*per {
		t.Fatalf("file is %d bytes, want %d", st.Size(), 4*per)
	}
	got, end := drain(j)
	if string(p3) != "record 002" || strings.Join(got, ",") != "record 003,record 004,record 005" {
		t.Fatalf("after compaction: %s then %v", p3, got)
	}
	if err := j.Ack(end); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("compaction left its temporary file: %v", err)
	}
	j2, _ := open(t, path, 4*per)
	if n, _ := j2.Len(); n != 0 {
		t.Fatalf("%d records after a full replay and restart", n)
	}
}

func TestOneProcessPerJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.journal")
	open(t, path, 1<<20)
	if _, err := Open(path, 1<<20, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "j"), 3, nil); err == nil {
		t.Fatal("a 3-byte bound was accepted")
	}
	j, _ := open(t, filepath.Join(t.TempDir(), "j"), 1<<20)
	if err := j.Append(nil); err == nil {
		t.Fatal("an empty record was accepted")
	}
}

func TestAppendSeveralAllOrNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.journal")
	per := int64(headerSize + len(rec(0)))
	j, _ := open(t, path, 5*per)
	if err := j.Append(rec(0), rec(1), rec(2)); err != nil {
		t.Fatal(err)
	}
	// Three more do not fit in the two left: none is written.
	if err := j.Append(rec(3), rec(4), rec(5)); !errors.Is(err, ErrFull) {
		t.Fatalf("three records into room for two: %v, want ErrFull", err)
	}
	// An empty record among good ones spoils the lot.
	if err := j.Append(rec(3), nil); err == nil {
		t.Fatal("an empty record among others was accepted")
	}
	if n, b := j.Len(); n != 3 || b != 3*per {
		t.Fatalf("after refused appends: %d records, %d bytes; want 3, %d", n, b, 3*per)
	}
	if st, _ := os.Stat(path); st.Size() != 3*per {
		t.Fatalf("file is %d bytes after refused appends, want %d", st.Size(), 3*per)
	}
	if err := j.Append(rec(3), rec(4)); err != nil {
		t.Fatalf("two records into room for two: %v", err)
	}
	// A restart reads them back in the order they were appended.
	j.Close()
	j2, _ := open(t, path, 5*per)
	got, _ := drain(j2)
	if want := "record 000,record 001,record 002,record 003,record 004"; strings.Join(got, ",") != want {
		t.Fatalf("replayed %v, want %s", got, want)
	}
}

func TestAppendSeveralAfterCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.journal")
	per := int64(headerSize + len(rec(0)))
	j, _ := open(t, path, 4*per)
	if err := j.Append(rec(0), rec(1), rec(2)); err != nil {
		t.Fatal(err)
	}
	_, end, _ := j.Next()
	if err := j.Ack(end); err != nil {
		t.Fatal(err)
	}
	// Two records fit only once record 0's room is reclaimed.
	if err := j.Append(rec(3), rec(4)); err != nil {
		t.Fatal(err)
	}
	got, _ := drain(j)
	if want := "record 001,record 002,record 003,record 004"; strings.Join(got, ",") != want {
		t.Fatalf("read %v, want %s", got, want)
	}
}
