package upload

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
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

var (
	gwOnce sync.Once
	gwPath string
	gwErr  error
)

// versityGW returns the path of a versitygw binary, built by
// scripts/versitygw.sh on first use.
func versityGW() (string, error) {
	gwOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			gwErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "versitygw.sh"))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			gwErr = fmt.Errorf("scripts/versitygw.sh: %w\n%s", err, stderr.String())
			return
		}
		gwPath = strings.TrimSpace(string(out))
	})
	return gwPath, gwErr
}

// startS3 gives the test an empty bucket on an S3 server: the one named
// by KOI_TEST_S3_ENDPOINT (with KOI_TEST_S3_ACCESS_KEY and
// KOI_TEST_S3_SECRET_KEY), or a versitygw process of its own over a
// temporary directory.
func startS3(t *testing.T) S3Config {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	bucket := "koi-test-" + hex.EncodeToString(b[:])
	cfg := S3Config{
		Endpoint: os.Getenv("KOI_TEST_S3_ENDPOINT"), Bucket: bucket,
		AccessKey: os.Getenv("KOI_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("KOI_TEST_S3_SECRET_KEY"),
	}
	if cfg.Endpoint == "" {
		bin, err := versityGW()
		if err != nil {
			msg := "no S3 server: versitygw could not be built (" + err.Error() + "); or set KOI_TEST_S3_ENDPOINT"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = "http://"+addr, "koitest", "koitest-secret-key"
		var log bytes.Buffer
		cmd := exec.Command(bin, "--access", cfg.AccessKey, "--secret", cfg.SecretKey, "--port", addr, "posix", t.TempDir())
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("versitygw exited at start:\n%s", log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("versitygw does not listen on %s:\n%s", addr, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(cfg.Endpoint, "http://"), "https://"), &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: strings.HasPrefix(cfg.Endpoint, "https://"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("making bucket %s: %v", bucket, err)
	}
	return cfg
}

func TestS3Store(t *testing.T) {
	cfg := startS3(t)
	cfg.Prefix = "koi/uploads/"
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
