package upload

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

func TestS3Store(t *testing.T) {
	b := testsvc.S3(t)
	cfg := S3Config{Endpoint: b.Endpoint, Bucket: b.Bucket, AccessKey: b.AccessKey, SecretKey: b.SecretKey, Prefix: "koi/uploads/"}
	ctx := context.Background()
	st, err := NewS3Store(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, st)

	wrong := cfg
	wrong.Bucket = "no-such-bucket-koi"
	if _, err := NewS3Store(ctx, wrong); err == nil || !strings.Contains(err.Error(), "no-such-bucket-koi") {
		t.Fatalf("missing bucket: %v", err)
	}
	wrong = cfg
	wrong.SecretKey = "wrong"
	if _, err := NewS3Store(ctx, wrong); err == nil {
		t.Fatal("wrong credentials accepted")
	}
	if _, err := NewS3Store(ctx, S3Config{Endpoint: "ftp://x", Bucket: "b"}); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}

// The service on S3: upload, ranged download, a spent slot, expiry.
func TestServiceOnS3(t *testing.T) {
	b := testsvc.S3(t)
	st, err := NewS3Store(context.Background(), S3Config{Endpoint: b.Endpoint, Bucket: b.Bucket, AccessKey: b.AccessKey, SecretKey: b.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Store = st; c.Expire = 2 * time.Hour; c.Quota = 1 << 20 })
	body := bytes.Repeat([]byte("0123456789"), 3000)
	put, get := e.slot(t, "données brutes.csv", len(body), "text/csv")
	if resp, msg := do(t, "PUT", put, body, map[string]string{"Content-Type": "text/csv"}); resp.StatusCode != 201 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, msg)
	}
	resp, got := do(t, "GET", get, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != "text/csv" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename*=utf-8''donn%C3%A9es%20brutes.csv` {
		t.Fatalf("GET: %d %d bytes %v", resp.StatusCode, len(got), resp.Header)
	}
	if resp, part := do(t, "GET", get, nil, map[string]string{"Range": "bytes=29990-"}); resp.StatusCode != 206 || string(part) != "0123456789" {
		t.Fatalf("range: %d %q", resp.StatusCode, part)
	}
	if resp, _ := do(t, "PUT", put, body, map[string]string{"Content-Type": "text/csv"}); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %d", resp.StatusCode)
	}
	e.advance(2*time.Hour + time.Minute)
	files, markers, err := e.svc.Cleanup(context.Background())
	if err != nil || files != 1 || markers != 1 {
		t.Fatalf("cleanup: %d %d %v", files, markers, err)
	}
	if _, err := st.Stat(context.Background(), fileKey(strings.Split(get, "/")[len(strings.Split(get, "/"))-2])); err != ErrNotFound {
		t.Fatalf("expired file still stored: %v", err)
	}
}
