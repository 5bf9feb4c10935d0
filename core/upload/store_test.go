package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// testStore checks the Store contract on st, which must be empty.
func testStore(t *testing.T, st Store) {
	ctx := context.Background()
	id := newID()
	key := fileKey(id)
	meta := Meta{ContentType: "image/jpeg", Filename: "my résumé \"1\".jpg", Name: "my_résumé__1_.jpg"}
	body := bytes.Repeat([]byte("0123456789"), 1000)

	if _, err := st.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat of nothing: %v", err)
	}
	if _, err := st.Open(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of nothing: %v", err)
	}

	// A body that ends early or fails stores nothing.
	if err := st.Put(ctx, key, bytes.NewReader(body[:500]), int64(len(body)), meta); err == nil {
		t.Fatal("a short body was stored")
	}
	if err := st.Put(ctx, key, io.MultiReader(bytes.NewReader(body[:700]), iotest.ErrReader(errors.New("client gone"))), int64(len(body)), meta); err == nil {
		t.Fatal("a failing body was stored")
	}
	if _, err := st.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after failed puts: %v", err)
	}

	if err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), meta); err != nil {
		t.Fatalf("put: %v", err)
	}
	info, err := st.Stat(ctx, key)
	if err != nil || info.Size != int64(len(body)) || info.Meta != meta || info.Modified.IsZero() {
		t.Fatalf("stat: %+v %v", info, err)
	}
	// Taken: refused, the first kept.
	if err := st.Put(ctx, key, strings.NewReader("other"), 5, Meta{ContentType: "text/html"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second put: %v", err)
	}
	obj, err := st.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Info().Meta != meta {
		t.Fatalf("open meta: %+v", obj.Info().Meta)
	}
	if _, err := obj.Seek(9000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(tail, body[9000:]) {
		t.Fatalf("ranged read: %d bytes, %v", len(tail), err)
	}

	// Racing puts of one key: exactly one wins.
	race := fileKey(newID())
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			errs[i] = st.Put(ctx, race, bytes.NewReader(body), int64(len(body)), Meta{ContentType: "text/plain", Name: "x"})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Fatalf("racing put: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racing puts won", won)
	}

	// Markers: empty objects without metadata, listed by prefix.
	m1, m2 := markerKey("aa", newID(), 10), markerKey("bb", newID(), 20)
	for _, m := range []string{m1, m2} {
		if err := st.Put(ctx, m, strings.NewReader(""), 0, Meta{}); err != nil {
			t.Fatalf("marker: %v", err)
		}
	}
	list := func(prefix string) []string {
		var keys []string
		if err := st.List(ctx, prefix, func(i Info) error { keys = append(keys, i.Key); return nil }); err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		slices.Sort(keys)
		return keys
	}
	if got := list(ownersPrefix + "aa/"); !slices.Equal(got, []string{m1}) {
		t.Fatalf("list aa: %v", got)
	}
	if got := list(ownersPrefix); len(got) != 2 {
		t.Fatalf("list owners: %v", got)
	}
	if got := list(ownersPrefix + "none/"); len(got) != 0 {
		t.Fatalf("list of an absent prefix: %v", got)
	}
	want := []string{key, race}
	slices.Sort(want)
	if got := list(filesPrefix); !slices.Equal(got, want) {
		t.Fatalf("list files: %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := st.List(ctx, filesPrefix, func(Info) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("list stopped by fn: %v", err)
	}

	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := st.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestDirStore(t *testing.T) {
	root := t.TempDir()
	st, err := NewDirStore(root)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, st)
	// Nothing but objects is left: no temporary files.
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	// A crash's leftovers go at the next start once they are old: a
	// temporary file and metadata without content; a complete object
	// stays.
	old := time.Now().Add(-2 * staleTemp)
	tmp := filepath.Join(root, "files", tempPrefix+"123")
	orphan := filepath.Join(root, "files", newID()+metaSuffix)
	keep := fileKey(newID())
	if err := st.Put(context.Background(), keep, strings.NewReader("x"), 1, Meta{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp, orphan} {
		os.WriteFile(p, []byte("{}"), 0o600)
	}
	for _, p := range []string{tmp, orphan, filepath.Join(root, keep), filepath.Join(root, keep) + metaSuffix} {
		os.Chtimes(p, old, old)
	}
	if _, err := NewDirStore(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp, orphan} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left", p)
		}
	}
	if _, err := st.Stat(context.Background(), keep); err != nil {
		t.Errorf("a complete object went: %v", err)
	}
	for _, bad := range []string{"../x", "files/../../x", "/abs", "files/.hidden", "files/a.meta", "files//x", "files/a b", ""} {
		if err := st.Put(context.Background(), bad, strings.NewReader("x"), 1, Meta{}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
