// Package mongotest gives tests a MongoDB server to talk to: a FerretDB
// process of their own (MongoDB wire protocol on SQLite, data in the
// test's temporary directory), or the server named by KOI_TEST_MONGO_URI.
//
// The FerretDB binary comes from scripts/ferretdb.sh, which builds it once
// and caches it under .cache/ferretdb; the first test run on a machine
// waits for that build (about a minute with an empty Go module cache).
//
// Environment:
//
//	KOI_TEST_MONGO_URI               use this server (a real MongoDB) instead
//	KOI_TEST_FERRETDB_POSTGRESQL_URL run FerretDB on this PostgreSQL database
//	                                 instead of SQLite
package mongotest

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

	"github.com/koi-im/koi/internal/testsvc"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Server is a MongoDB server for one test.
type Server struct {
	// URI is the connection string, "mongodb://127.0.0.1:PORT/".
	URI string
	// Database is a database name no other test uses.
	Database string
	// Real is true for a real MongoDB (KOI_TEST_MONGO_URI), false for
	// FerretDB.
	Real bool
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ferretDB returns the path of the FerretDB binary, building it if needed.
func ferretDB() (string, error) {
	binOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "ferretdb.sh"))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("scripts/ferretdb.sh: %w\n%s", err, stderr.String())
			return
		}
		binPath = strings.TrimSpace(string(out))
	})
	return binPath, binErr
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/koi-im/koi\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("mongotest: no koi go.mod above the working directory")
		}
		dir = parent
	}
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Start returns a server for t; it is stopped (or its database dropped)
// at cleanup.
func Start(t testing.TB) Server {
	t.Helper()
	if uri := os.Getenv("KOI_TEST_MONGO_URI"); uri != "" {
		s := Server{URI: uri, Database: randomName("koi_test_"), Real: true}
		t.Cleanup(func() { dropDatabase(uri, s.Database) })
		return s
	}
	bin, err := ferretDB()
	if err != nil {
		t.Fatalf("mongotest: no FerretDB binary: %v", err)
	}
	dir := t.TempDir()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--listen-addr=" + addr, "--state-dir=" + dir, "--debug-addr=-",
		"--telemetry=disable", "--log-level=error"}
	if pg := os.Getenv("KOI_TEST_FERRETDB_POSTGRESQL_URL"); pg != "" {
		args = append(args, "--handler=postgresql", "--postgresql-url="+pg)
	} else {
		data := filepath.Join(dir, "sqlite")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--handler=sqlite", "--sqlite-url=file:"+data+"/")
	}
	testsvc.StartDaemon(t, "FerretDB", exec.Command(bin, args...), addr)
	return Server{URI: "mongodb://" + addr + "/", Database: randomName("koi_test_")}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("mongotest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func dropDatabase(uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return
	}
	defer c.Disconnect(ctx)
	c.Database(db).Drop(ctx)
}
