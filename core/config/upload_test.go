package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestUpload(t *testing.T) {
	src := base + `server { data_dir = "/var/lib/koi" }
host "example.com" { auth = "store"  upload { listen = "0.0.0.0:5281"  cert_file = "/etc/koi/up.pem"  key_file = "/etc/koi/up.key" } }
host "example.org" {
  auth = "store"
  upload {
    domain = "files.example.org"  listen = "127.0.0.1:5282"  tls = false  url_base = "https://example.org/files/"
    max_file_size = 1000  quota = 5000  expire = "0s"  secret = "0123456789abcdef0123456789abcdef"
    store { type = "s3"  endpoint = "https://s3.example.org"  bucket = "koi"  region = "eu"
            access_key = "AK"  secret_key = "SK"  prefix = "uploads" }
  }
}
host "example.net" { auth = "store" }
`
	cfg, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Upload{
		Domain: "upload.example.com", Listen: "0.0.0.0:5281", TLS: true, URLBase: "https://upload.example.com:5281",
		CertFile: "/etc/koi/up.pem", KeyFile: "/etc/koi/up.key",
		MaxFileSize: DefaultUploadMaxFileSize, Quota: DefaultUploadQuota, Expire: DefaultUploadExpire,
		Store: UploadStore{Type: "dir", Path: filepath.Join("/var/lib/koi", "upload", "upload.example.com")},
	}
	if got := cfg.Hosts[0].Upload; !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\ngot  %#v\nwant %#v", got, want)
	}
	want = &Upload{
		Domain: "files.example.org", Listen: "127.0.0.1:5282", URLBase: "https://example.org/files",
		MaxFileSize: 1000, Quota: 5000, Secret: "0123456789abcdef0123456789abcdef",
		Store: UploadStore{Type: "s3", Endpoint: "https://s3.example.org", Bucket: "koi", Region: "eu",
			AccessKey: "AK", SecretKey: "SK", Prefix: "uploads/"},
	}
	if got := cfg.Hosts[1].Upload; !reflect.DeepEqual(got, want) {
		t.Errorf("all keys:\ngot  %#v\nwant %#v", got, want)
	}
	if cfg.Hosts[2].Upload != nil {
		t.Errorf("a host without the block has an upload service")
	}

	// From the environment, into the file's block or making one.
	cfg, err = Parse([]byte(src), []string{
		"KOI_HOST__EXAMPLE.ORG__UPLOAD__STORE__SECRET_KEY=from-env",
		"KOI_HOST__EXAMPLE.ORG__UPLOAD__MAX_FILE_SIZE=2000",
		"KOI_HOST__EXAMPLE.NET__UPLOAD__LISTEN=127.0.0.1:5283",
		"KOI_HOST__EXAMPLE.NET__UPLOAD__TLS=false",
		"KOI_HOST__EXAMPLE.NET__UPLOAD__QUOTA=0",
		"KOI_HOST__EXAMPLE.NET__UPLOAD__EXPIRE=24h",
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Hosts[1].Upload; u.Store.SecretKey != "from-env" || u.MaxFileSize != 2000 {
		t.Errorf("overrides: %+v", u)
	}
	if u := cfg.Hosts[2].Upload; u == nil || u.Listen != "127.0.0.1:5283" || u.TLS || u.Quota != 0 || u.Expire != 24*time.Hour ||
		u.URLBase != "http://upload.example.net:5283" {
		t.Errorf("block from the environment: %+v", u)
	}
}

func TestUploadProblems(t *testing.T) {
	host := func(body string) string {
		return base + `host "example.com" { auth = "store"  upload { ` + body + ` } }` + "\n"
	}
	for _, tc := range []struct{ src, want string }{
		{host(``), `host "example.com".upload.listen: missing`},
		{host(`listen = "5281"`), `host "example.com".upload.listen: want host:port`},
		{host(`listen = ":5281"  lisen = "x"`), `host "example.com".upload.lisen: unknown key (did you mean listen?)`},
		{host(`listen = ":5281"  domain = "example.com"`), `host "example.com".upload.domain: the service needs a domain of its own`},
		{host(`listen = ":5281"  domain = "bad_domain"`), `host "example.com".upload.domain: not a valid domain name`},
		{host(`listen = "127.0.0.1:5222"`), `host "example.com".upload.listen: "127.0.0.1:5222" is already used by listen "c2s"`},
		{host(`listen = ":5281"  url_base = "ftp://x"`), `host "example.com".upload.url_base: want an http:// or https:// URL`},
		{host(`listen = ":5281"  url_base = "https://x/?a=b"`), `host "example.com".upload.url_base: want a URL without user, query or fragment`},
		{host(`listen = ":5281"  max_file_size = 0`), `host "example.com".upload.max_file_size: must be greater than 0`},
		{host(`listen = ":5281"  max_file_size = 100  quota = 50`), `host "example.com".upload.quota: 50 is less than max_file_size`},
		{host(`listen = ":5281"  quota = -1`), `host "example.com".upload.quota: must not be negative`},
		{host(`listen = ":5281"  expire = "10m"`), `host "example.com".upload.expire: at least 1h0m0s`},
		{host(`listen = ":5281"  secret = "short"`), `host "example.com".upload.secret: at least 32 characters`},
		{host(`listen = ":5281"  tls = "yes"`), `host "example.com".upload.tls: want true or false`},
		{host(`listen = ":5281"  store { type = "ftp" }`), `host "example.com".upload.store.type: want one of "dir", "s3"`},
		{host(`listen = ":5281"  store { type = "s3" }`), `host "example.com".upload.store.endpoint: missing`},
		{host(`listen = ":5281"  store { type = "s3"  endpoint = "https://s3"  }`), `host "example.com".upload.store.bucket: missing`},
		{host(`listen = ":5281"  store { type = "s3"  endpoint = "s3.amazonaws.com"  bucket = "b" }`), `host "example.com".upload.store.endpoint: want an http:// or https:// URL`},
		{host(`listen = ":5281"  store { type = "s3"  endpoint = "https://s3/bucket"  bucket = "b" }`), `host "example.com".upload.store.endpoint: want the service's URL alone`},
		{host(`listen = ":5281"  store { type = "s3"  endpoint = "https://s3"  bucket = "b"  prefix = "/x" }`), `host "example.com".upload.store.prefix: want a key prefix`},
		{host(`listen = ":5281"  store { type = "s3"  endpoint = "https://s3"  bucket = "b"  path = "/x" }`), `host "example.com".upload.store.path: only for type "dir"`},
		{host(`listen = ":5281"  store { bucket = "b" }`), `host "example.com".upload.store.bucket: only for type "s3"`},
		{host(`listen = ":5281"  max_file_size = 6000000000  quota = 0  store { type = "s3"  endpoint = "https://s3"  bucket = "b" }`), `host "example.com".upload.max_file_size: at most 5368709120`},
		{host(`listen = ":5281"  store = "dir"`), `host "example.com".upload.store: want a block`},
		{host(`listen = ":5281"  cert_file = "c.pem"`), `host "example.com".upload.key_file: missing: cert_file and key_file go together`},
		{host(`listen = ":5281"  key_file = "k.pem"`), `host "example.com".upload.cert_file: missing`},
		{host(`listen = ":5281"  tls = false  cert_file = "c.pem"  key_file = "k.pem"`), `host "example.com".upload.cert_file: only with tls = true`},
		{base + `host "example.com" { auth = "store"  upload = "on" }`, `host "example.com".upload: want a block`},
		{base + `host "a.example" { auth = "store"  upload { listen = ":1" } }
host "upload.a.example" { auth = "store" }`, `host "a.example".upload.domain: "upload.a.example" is a host`},
		{base + `host "a.example" { auth = "store"  upload { listen = ":1" } }
component "upload.a.example" { secret = "0123456789abcdef0123" }`, `host "a.example".upload.domain: "upload.a.example" is an external component's`},
		{base + `host "a.example" { auth = "store"  upload { listen = ":1"  domain = "f.example" } }
host "b.example" { auth = "store"  upload { listen = ":2"  domain = "f.example" } }`, `host "b.example".upload.domain: "f.example" is already the upload domain of host "a.example"`},
		{base + `host "a.example" { auth = "store"  upload { listen = ":1" } }
host "b.example" { auth = "store"  upload { listen = ":1" } }`, `host "b.example".upload.listen: ":1" is already used by host "a.example".upload`},
	} {
		_, err := Parse([]byte(tc.src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\ngot  %v\nwant %q", tc.src, err, tc.want)
		}
	}
	_, err := Parse([]byte(host(`listen = ":5281"`)), []string{"KOI_HOST__EXAMPLE.COM__UPLOAD__QUOTA=lots"})
	if err == nil || !strings.Contains(err.Error(), `upload.quota: want an integer`) {
		t.Errorf("bad integer from the environment: %v", err)
	}
}

// The upload block commented out in the example shows the defaults.
func TestExampleUploadDefaults(t *testing.T) {
	var lines []string
	in := false
	for _, l := range strings.Split(Example(), "\n") {
		if strings.HasPrefix(l, "  # upload {") {
			in = true
		}
		if in {
			l = "  " + strings.TrimPrefix(l, "  #")
			if strings.HasSuffix(l, "} }") {
				in = false
			}
		}
		lines = append(lines, l)
	}
	cfg, err := Parse([]byte(strings.Join(lines, "\n")), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Upload{
		Domain: "upload.localhost", Listen: "127.0.0.1:5281", TLS: true, URLBase: "https://upload.localhost:5281",
		MaxFileSize: DefaultUploadMaxFileSize, Quota: DefaultUploadQuota, Expire: DefaultUploadExpire,
		Store: UploadStore{Type: "dir", Path: "data/upload/upload.localhost"},
	}
	if got := cfg.Hosts[0].Upload; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}
