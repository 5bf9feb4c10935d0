package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// metaSuffix names the file beside an object that holds its Meta.
const metaSuffix = ".meta"

// tempPrefix starts the names of files still being written; they are
// never listed or served.
const tempPrefix = ".put-"

// staleTemp is the age past which a temporary file is a crash's leftover.
const staleTemp = 24 * time.Hour

// DirStore keeps objects as plain files under a directory: the content at
// ROOT/KEY, with its metadata, when it has any, beside it in KEY.meta as
// JSON. A file is written aside and linked into place, the metadata before
// the content, so an object whose content file exists is complete.
type DirStore struct {
	root string
}

// NewDirStore opens (making it if needed) the store at root, removing
// what a crash left behind: temporary files, and metadata whose content
// never arrived.
func NewDirStore(root string) (*DirStore, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("upload store %s: %w", root, err)
	}
	d := &DirStore{root: root}
	cutoff := time.Now().Add(-staleTemp)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		name := e.Name()
		orphan := false
		if strings.HasSuffix(name, metaSuffix) && !strings.HasPrefix(name, ".") {
			_, err := os.Lstat(strings.TrimSuffix(p, metaSuffix))
			orphan = errors.Is(err, fs.ErrNotExist)
		}
		if !orphan && !strings.HasPrefix(name, tempPrefix) {
			return nil
		}
		// Old enough that no upload in flight is writing it.
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upload store %s: %w", root, err)
	}
	return d, nil
}

// path maps a key to its file, refusing anything but the plain names the
// service builds: a bad key here is a bug, never a way out of root.
func (d *DirStore) path(key string) (string, error) {
	segs := strings.Split(key, "/")
	for _, s := range segs {
		if s == "" || s[0] == '.' || strings.HasSuffix(s, metaSuffix) {
			return "", fmt.Errorf("upload: bad key %q", key)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return "", fmt.Errorf("upload: bad key %q", key)
			}
		}
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (d *DirStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	withMeta := meta != (Meta{})
	claim := p
	if withMeta {
		claim = p + metaSuffix
	}
	if _, err := os.Lstat(claim); err == nil {
		return ErrExists
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	data, err := writeTemp(dir, func(f *os.File) error {
		n, err := io.CopyN(f, &ctxReader{ctx, r}, size)
		if err == io.EOF {
			err = fmt.Errorf("%w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
		}
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(data)
	if withMeta {
		mt, err := writeTemp(dir, func(f *os.File) error { return json.NewEncoder(f).Encode(meta) })
		if err != nil {
			return err
		}
		defer os.Remove(mt)
		// The metadata's link claims the key: of two uploads racing for
		// it, exactly one gets here.
		if err := os.Link(mt, claim); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return ErrExists
			}
			return fmt.Errorf("upload: %w", err)
		}
	}
	if err := os.Link(data, p); err != nil {
		if withMeta {
			os.Remove(claim)
		}
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return fmt.Errorf("upload: %w", err)
	}
	syncDir(dir)
	return nil
}

// writeTemp writes a new temporary file in dir with fill and flushes it
// to disk; on error nothing is left.
func writeTemp(dir string, fill func(*os.File) error) (string, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("upload: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes the links in dir durable; a failure only risks losing a
// file a crash interrupts, as without it, so it is not reported.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// Stat implements Store.
func (d *DirStore) Stat(ctx context.Context, key string) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return Info{}, ErrNotFound
		}
		return Info{}, fmt.Errorf("upload: %w", err)
	}
	info := Info{Key: key, Size: fi.Size(), Modified: fi.ModTime()}
	b, err := os.ReadFile(p + metaSuffix)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &info.Meta); err != nil {
			return Info{}, fmt.Errorf("upload: metadata of %s: %w", key, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Info{}, fmt.Errorf("upload: %w", err)
	}
	return info, nil
}

// Open implements Store.
func (d *DirStore) Open(ctx context.Context, key string) (Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	// Opened before its metadata is read: a Delete in between leaves this
	// open file readable, never a name with another file's content.
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("upload: %w", err)
	}
	info, err := d.Stat(ctx, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileObject{File: f, info: info}, nil
}

type fileObject struct {
	*os.File
	info Info
}

func (o *fileObject) Info() Info { return o.info }

// Delete implements Store: the content first, so that a half-deleted
// object is already gone for readers.
func (d *DirStore) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	for _, f := range []string{p, p + metaSuffix} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upload: %w", err)
		}
	}
	return nil
}

// List implements Store.
func (d *DirStore) List(ctx context.Context, prefix string, fn func(Info) error) error {
	base, err := d.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return err
	}
	err = filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, metaSuffix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		return fn(Info{Key: filepath.ToSlash(rel), Size: fi.Size(), Modified: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("upload: listing %s: %w", prefix, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
