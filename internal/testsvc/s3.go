package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Bucket is an empty bucket on an S3-compatible server, for one test.
type S3Bucket struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string
}

var (
	gwOnce sync.Once
	gwPath string
	gwErr  error
)

// versityGW returns the path of a versitygw binary, which
// scripts/versitygw.sh builds into .cache/versitygw on first use.
func versityGW() (string, error) {
	gwOnce.Do(func() {
		scripts, err := ScriptsDir()
		if err != nil {
			gwErr = err
			return
		}
		root := filepath.Dir(filepath.Dir(scripts))
		cmd := exec.Command(filepath.Join(root, "scripts", "versitygw.sh"))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			gwErr = fmt.Errorf("%w: scripts/versitygw.sh could not build versitygw (an S3 server): %v\n%s", ErrMissing, err, stderr.String())
			return
		}
		gwPath = strings.TrimSpace(string(out))
	})
	return gwPath, gwErr
}

// S3 gives t an empty bucket: on the server named by KOI_TEST_S3_ENDPOINT
// (with KOI_TEST_S3_ACCESS_KEY and KOI_TEST_S3_SECRET_KEY), or on a
// versitygw process of t's own serving a temporary directory, stopped at
// cleanup. A versitygw that cannot be built skips t (fails it under
// CI=true).
func S3(t testing.TB) S3Bucket {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	s := S3Bucket{
		Endpoint: os.Getenv("KOI_TEST_S3_ENDPOINT"), Bucket: "koi-test-" + hex.EncodeToString(b[:]),
		AccessKey: os.Getenv("KOI_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("KOI_TEST_S3_SECRET_KEY"),
	}
	if s.Endpoint == "" {
		bin, err := versityGW()
		Require(t, err)
		s.Endpoint, s.AccessKey, s.SecretKey = startVersityGW(t, bin)
	}
	secure := strings.HasPrefix(s.Endpoint, "https://")
	c, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(s.Endpoint, "http://"), "https://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: secure,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testsvc: making bucket %s on %s: %v", s.Bucket, s.Endpoint, err)
	}
	return s
}

// startVersityGW runs versitygw over a temporary directory on a free
// loopback port and returns its endpoint and root credentials.
func startVersityGW(t testing.TB, bin string) (endpoint, access, secret string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	access, secret = "koitest", "koitest-secret-key"
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "posix", t.TempDir())
	StartDaemon(t, "versitygw", cmd, addr)
	return "http://" + addr, access, secret
}
