package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MaxS3FileSize is the largest object S3 takes in one PUT. Uploads are
// sent that way, never in parts, so that the conditional write that keeps
// a slot from being used twice applies to them (and a part left by a
// failed upload cannot linger).
const MaxS3FileSize = 5 << 30

// The user metadata (x-amz-meta-*) holding Meta's names, percent-encoded:
// header values are ASCII.
const (
	metaFilename = "filename"
	metaName     = "name"
)

// S3Config locates a bucket of an S3-compatible service.
type S3Config struct {
	Endpoint  string // URL: https://s3.eu-west-1.amazonaws.com, http://127.0.0.1:7070
	Bucket    string
	Region    string // "" lets the client find it
	AccessKey string
	SecretKey string
	// Prefix is put before every key ("koi/uploads/"), so that the
	// bucket can hold other things.
	Prefix string
	// Transport replaces the HTTP transport (tests); nil is the default.
	Transport http.RoundTripper
}

// S3Store keeps objects in an S3 bucket, the metadata in the object's
// Content-Type and user metadata.
type S3Store struct {
	c      *minio.Client
	bucket string
	prefix string
}

// NewS3Store connects to the bucket cfg names and checks that it exists.
func NewS3Store(ctx context.Context, cfg S3Config) (*S3Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upload store: endpoint %q: want an http:// or https:// URL", cfg.Endpoint)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    u.Scheme == "https",
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("upload store %s: %w", cfg.Endpoint, err)
	}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("upload store %s: bucket %q: %w", cfg.Endpoint, cfg.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("upload store %s: there is no bucket %q", cfg.Endpoint, cfg.Bucket)
	}
	return &S3Store{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

func notFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == "NoSuchKey"
}

// Put implements Store with a conditional PUT (If-None-Match: *), so that
// of two uploads racing for a key exactly one is stored. A body that ends
// early fails the request: S3 stores nothing of it.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error {
	if size > MaxS3FileSize {
		return fmt.Errorf("upload: %d bytes is more than S3 takes in one PUT", size)
	}
	// Most uploads are new keys, but one taken already is refused without
	// sending the body.
	if _, err := s.Stat(ctx, key); err == nil {
		return ErrExists
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: meta.ContentType, DisableMultipart: true}
	opts.UserMetadata = map[string]string{}
	if meta.Filename != "" {
		opts.UserMetadata[metaFilename] = url.PathEscape(meta.Filename)
	}
	if meta.Name != "" {
		opts.UserMetadata[metaName] = url.PathEscape(meta.Name)
	}
	opts.SetMatchETagExcept("*")
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+key, &exactReader{r: r, left: size}, size, opts)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusPreconditionFailed ||
			r.Code == "PreconditionFailed" || r.StatusCode == http.StatusConflict {
			return ErrExists
		}
		return fmt.Errorf("upload: s3 put %s: %w", key, err)
	}
	return nil
}

// Stat implements Store.
func (s *S3Store) Stat(ctx context.Context, key string) (Info, error) {
	oi, err := s.c.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return Info{}, ErrNotFound
		}
		return Info{}, fmt.Errorf("upload: s3 stat %s: %w", key, err)
	}
	return s.info(key, oi), nil
}

func (s *S3Store) info(key string, oi minio.ObjectInfo) Info {
	info := Info{Key: key, Size: oi.Size, Modified: oi.LastModified, Meta: Meta{ContentType: oi.ContentType}}
	for k, v := range oi.UserMetadata {
		k = strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")
		name, err := url.PathUnescape(v)
		if err != nil {
			continue
		}
		switch k {
		case metaFilename:
			info.Meta.Filename = name
		case metaName:
			info.Meta.Name = name
		}
	}
	return info
}

// Open implements Store. The object reads lazily and seeks with ranged
// GETs, so an HTTP range costs only its bytes.
func (s *S3Store) Open(ctx context.Context, key string) (Object, error) {
	o, err := s.c.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		if notFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("upload: s3 get %s: %w", key, err)
	}
	oi, err := o.Stat()
	if err != nil {
		o.Close()
		if notFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("upload: s3 get %s: %w", key, err)
	}
	return &s3Object{Object: o, info: s.info(key, oi)}, nil
}

type s3Object struct {
	*minio.Object
	info Info
}

func (o *s3Object) Info() Info { return o.info }

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	err := s.c.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return fmt.Errorf("upload: s3 delete %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string, fn func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn stops early
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("upload: s3 list %s: %w", prefix, oi.Err)
		}
		key := strings.TrimPrefix(oi.Key, s.prefix)
		if err := fn(Info{Key: key, Size: oi.Size, Modified: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// exactReader passes on exactly left bytes, turning an early end into an
// error rather than EOF, so that no client library stores a short body
// as a whole object.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}
