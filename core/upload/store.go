package upload

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store keeps the uploaded files and the service's small index beside
// them. Keys are slash-separated paths the service builds from validated
// parts only (see the key functions below); a store maps them onto its
// own namespace.
type Store interface {
	// Put stores exactly size bytes read from r under key, with meta,
	// all or nothing: a reader that ends early or fails leaves nothing
	// behind. A key that exists already gives ErrExists and is kept as it
	// was.
	Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error
	// Stat describes the object at key, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Open returns the object at key for reading, or ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// Delete removes the object at key; a missing one is no error.
	Delete(ctx context.Context, key string) error
	// List calls fn with every object whose key starts with prefix (which
	// ends with "/"), in no particular order, until fn returns an error.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// Meta is what the service keeps with a file.
type Meta struct {
	ContentType string // served as Content-Type
	Filename    string // the name the client announced, for Content-Disposition
	Name        string // the name in the file's URL
}

// Info describes a stored object.
type Info struct {
	Key      string
	Size     int64
	Modified time.Time
	Meta     Meta // filled by Stat and Open, not by List
}

// Object is an open stored file: seekable, so that HTTP ranges are served
// without reading what comes before them.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

var (
	// ErrExists is Put's error for a key that is taken.
	ErrExists = errors.New("upload: object exists")
	// ErrNotFound is the error for a key with no object.
	ErrNotFound = errors.New("upload: no such object")
)

// The store's layout. A file lives under files/ID. For the quota, each
// slot handed out leaves a marker owners/OWNER/ID-SIZE, OWNER standing for
// the user (keyed hash of the bare JID): a user's usage is one listing of
// their prefix, counting the slots not yet used, and the markers need no
// metadata support from the store (S3 listings do not return it).
const (
	filesPrefix  = "files/"
	ownersPrefix = "owners/"
)

func fileKey(id string) string { return filesPrefix + id }
