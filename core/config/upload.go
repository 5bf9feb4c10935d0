package config

import (
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Upload is a host's HTTP File Upload service, XEP-0363 (block upload
// inside a host block; see core/upload). Users of the host get upload
// slots from the service's domain and send the files to its HTTP
// listener.
type Upload struct {
	Domain string // key domain: the service's JID, default "upload." + the host
	Listen string // key listen: host:port of the HTTP(S) listener; required
	TLS    bool   // key tls: serve https, default true
	// CertFile and KeyFile (keys cert_file, key_file) are the listener's
	// own certificate, for a domain the tls block's certificate does not
	// cover; "" uses the tls block's. Read at start.
	CertFile, KeyFile string
	// URLBase (key url_base) starts the URLs of the slots, for a listener
	// behind a proxy ("https://files.example.com/xmpp"); default
	// https://DOMAIN:PORT (http:// with tls = false).
	URLBase     string
	MaxFileSize int64         // key max_file_size: bytes, default 104857600 (100 MiB)
	Quota       int64         // key quota: bytes per user (files kept and slots open), default 1073741824 (1 GiB); 0: none
	Expire      time.Duration // key expire: files are deleted this long after upload, default 720h; "0s" keeps them
	// Secret (key secret) signs the upload URLs; servers that share a
	// store and a domain need the same one. "" keeps a random key in
	// DATA_DIR/upload.key.
	Secret string
	Store  UploadStore // block store
}

// UploadStore is where an upload service keeps its files (block store
// inside upload).
type UploadStore struct {
	Type string // key type: "dir" (default) or "s3"
	// Path (key path, type "dir") is the directory, default
	// DATA_DIR/upload/DOMAIN.
	Path string
	// The keys of type "s3": an S3-compatible service.
	Endpoint  string // key endpoint: http:// or https:// URL; required
	Bucket    string // key bucket; required, and must exist
	Region    string // key region: "" lets the client find it
	AccessKey string // key access_key
	SecretKey string // key secret_key: set it from the environment
	Prefix    string // key prefix: before every object key, like "koi/"; ends with "/"
}

// Defaults of the upload block.
const (
	DefaultUploadMaxFileSize = 100 << 20
	DefaultUploadQuota       = 1 << 30
	DefaultUploadExpire      = 30 * 24 * time.Hour
)

// maxS3Upload is the largest object S3 takes in one PUT, which is how the
// upload service stores files (core/upload.MaxS3FileSize).
const maxS3Upload = 5 << 30

// minUploadExpire is the shortest expiry: below it a recipient who is
// offline for a while gets a dead link.
const minUploadExpire = time.Hour

// minUploadSecret is the shortest signing secret accepted.
const minUploadSecret = 32

// uploadKeys are the keys of an upload block and of its store block.
var (
	uploadKeys = map[string]kind{
		"domain": kString, "listen": kString, "tls": kBool, "url_base": kString, "max_file_size": kInt,
		"quota": kInt, "expire": kDuration, "secret": kString, "store": kAny,
		"cert_file": kString, "key_file": kString,
	}
	uploadStoreKeys = map[string]kind{
		"type": kString, "path": kString, "endpoint": kString, "bucket": kString, "region": kString,
		"access_key": kString, "secret_key": kString, "prefix": kString,
	}
)

// subBlock checks that v, the value of key in parent, is one block with
// only the keys of keys, and returns it; nil when absent or wrong
// (reported). Values the environment set as strings are converted to the
// key's type, as the schema does for top-level keys.
func (d *decoder) subBlock(parent *block, key string, keys map[string]kind) *block {
	v, ok := parent.get(key)
	if !ok {
		return nil
	}
	path := parent.at(key)
	m, ok := v.(map[string]any)
	if !ok {
		if _, list := v.([]any); list {
			d.problem(path, "want one block, got a list (is the block written twice?)")
		} else {
			d.problem(path, "want a block like %s { ... }, got %s", key, describe(v))
		}
		return nil
	}
	b := &block{d: d, path: path, m: maps.Clone(m), kind: keys}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kd, known := keys[k]
		if !known {
			d.problem(b.at(k), "unknown key%s", suggest(k, slices.Collect(maps.Keys(keys))))
			continue
		}
		s, isString := m[k].(string)
		if _, fromEnv := d.origin[strings.Join(b.at(k), delim)]; !fromEnv || !isString || kd == kString || kd == kDuration {
			continue
		}
		if conv, msg := convertEnv(kd, nil, s); msg == "" {
			b.m[k] = conv
		}
	}
	return b
}

// upload decodes the upload block of host hb.
func (d *decoder) upload(hb *block, host, dataDir string) *Upload {
	b := d.subBlock(hb, "upload", uploadKeys)
	if b == nil {
		return nil
	}
	u := &Upload{
		Domain:      strings.ToLower(b.nonEmpty("domain", "upload."+host)),
		TLS:         b.boolean("tls", true),
		MaxFileSize: b.integer("max_file_size", DefaultUploadMaxFileSize, true),
		Quota:       b.integer("quota", DefaultUploadQuota, false),
		Expire:      b.duration("expire", DefaultUploadExpire, false),
	}
	if msg := checkDomain(u.Domain); msg != "" {
		d.problem(b.at("domain"), "not a valid domain name: %s", msg)
	} else if u.Domain == host {
		d.problem(b.at("domain"), "the service needs a domain of its own, like %s", quote("upload."+host))
	}
	if !b.has("listen") {
		d.problem(b.at("listen"), "missing: want host:port of the HTTP listener, like 0.0.0.0:5281")
	} else if a, ok := b.str("listen"); ok {
		if msg := checkAddress(a); msg != "" {
			d.problem(b.at("listen"), "%s", msg)
		} else {
			u.Listen = a
		}
	}
	if s, ok := b.str("url_base"); ok {
		if msg := checkURLBase(s); msg != "" {
			d.problem(b.at("url_base"), "%s", msg)
		} else {
			u.URLBase = strings.TrimSuffix(s, "/")
		}
	} else if u.Listen != "" {
		_, port, _ := net.SplitHostPort(u.Listen)
		scheme := "https"
		if !u.TLS {
			scheme = "http"
		}
		u.URLBase = scheme + "://" + net.JoinHostPort(u.Domain, port)
	}
	u.CertFile = d.file(b.nonEmpty("cert_file", ""))
	u.KeyFile = d.file(b.nonEmpty("key_file", ""))
	switch {
	case (u.CertFile == "") != (u.KeyFile == ""):
		missing := "key_file"
		if u.CertFile == "" {
			missing = "cert_file"
		}
		d.problem(b.at(missing), "missing: cert_file and key_file go together")
	case u.CertFile != "" && !u.TLS:
		d.problem(b.at("cert_file"), "only with tls = true")
	}
	if u.Quota > 0 && u.Quota < u.MaxFileSize {
		d.problem(b.at("quota"), "%d is less than max_file_size (%d): nobody could upload a file of the largest size", u.Quota, u.MaxFileSize)
	}
	if u.Expire > 0 && u.Expire < minUploadExpire {
		d.problem(b.at("expire"), "at least %v, or \"0s\" to keep files, got %v", minUploadExpire, u.Expire)
	}
	if s, ok := b.str("secret"); ok && s != "" {
		if len(s) < minUploadSecret {
			d.problem(b.at("secret"), "at least %d characters, got %d; e.g. $(openssl rand -hex 32)", minUploadSecret, len(s))
		} else {
			u.Secret = s
		}
	}
	u.Store = d.uploadStore(b, u, dataDir)
	return u
}

func (d *decoder) uploadStore(ub *block, u *Upload, dataDir string) UploadStore {
	st := UploadStore{Type: "dir", Path: filepath.Join(dataDir, "upload", u.Domain)}
	b := d.subBlock(ub, "store", uploadStoreKeys)
	if b == nil {
		return st
	}
	st.Type = b.enum("type", "dir", "dir", "s3")
	only := func(typ string, keys ...string) {
		for _, k := range keys {
			if b.has(k) {
				d.problem(b.at(k), "only for type %s", quote(typ))
			}
		}
	}
	switch st.Type {
	case "dir":
		only("s3", "endpoint", "bucket", "region", "access_key", "secret_key", "prefix")
		if p := b.nonEmpty("path", ""); p != "" {
			st.Path = d.file(p)
		}
	case "s3":
		only("dir", "path")
		st.Path = ""
		if !b.has("endpoint") {
			d.problem(b.at("endpoint"), "missing: want the S3 service's URL, like https://s3.eu-west-1.amazonaws.com")
		} else if e, ok := b.str("endpoint"); ok {
			if msg := checkS3Endpoint(e); msg != "" {
				d.problem(b.at("endpoint"), "%s", msg)
			} else {
				st.Endpoint = e
			}
		}
		if !b.has("bucket") {
			d.problem(b.at("bucket"), "missing: want the name of an existing bucket")
		} else {
			st.Bucket = b.nonEmpty("bucket", "")
		}
		st.Region, _ = b.str("region")
		st.AccessKey, _ = b.str("access_key")
		st.SecretKey, _ = b.str("secret_key")
		if p, _ := b.str("prefix"); p != "" {
			if strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "..") {
				d.problem(b.at("prefix"), "want a key prefix like %s, got %s", quote("koi/uploads/"), quote(p))
			} else {
				st.Prefix = strings.TrimSuffix(p, "/") + "/"
			}
		}
		if u.MaxFileSize > maxS3Upload {
			d.problem(ub.at("max_file_size"), "at most %d (5 GiB, one S3 PUT) with an s3 store, got %d", int64(maxS3Upload), u.MaxFileSize)
		}
	}
	return st
}

// checkURLBase checks an upload url_base. It returns a message, or "".
func checkURLBase(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return "want an http:// or https:// URL like https://upload.example.com:5281, got " + quote(s)
	case u.Host == "":
		return "want a URL with a host, got " + quote(s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(s, "?"):
		return "want a URL without user, query or fragment, got " + quote(s)
	}
	return ""
}

// checkS3Endpoint checks an S3 endpoint. It returns a message, or "".
func checkS3Endpoint(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return "want an http:// or https:// URL like https://s3.eu-west-1.amazonaws.com, got " + quote(s)
	case u.Host == "":
		return "want a URL with a host, got " + quote(s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return "want the service's URL alone, without path, query or user (the bucket is a key of its own), got " + quote(s)
	}
	return ""
}

// checkUploads checks what no single upload block can: that the services'
// domains are no host's or component's and used once, and that their
// listeners have addresses of their own.
func (d *decoder) checkUploads(c *Config) {
	hosts := map[string]bool{}
	for _, h := range c.Hosts {
		hosts[h.Name] = true
	}
	comps := map[string]bool{}
	for _, cp := range c.Components {
		comps[cp.Name] = true
	}
	addrs := map[string]string{}
	for _, l := range c.Listeners {
		addrs[l.Address] = "listen " + quote(l.Name)
	}
	domains := map[string]string{}
	for _, h := range c.Hosts {
		u := h.Upload
		if u == nil {
			continue
		}
		path := []string{"host", h.Name, "upload"}
		if hosts[u.Domain] {
			d.problem(append(path, "domain"), "%s is a host; the upload service needs a domain of its own", quote(u.Domain))
		}
		if comps[u.Domain] {
			d.problem(append(path, "domain"), "%s is an external component's (component %s); the upload service needs a domain of its own", quote(u.Domain), quote(u.Domain))
		}
		if prev, dup := domains[u.Domain]; dup {
			d.problem(append(path, "domain"), "%s is already the upload domain of host %s", quote(u.Domain), quote(prev))
		}
		domains[u.Domain] = h.Name
		if u.Listen == "" {
			continue
		}
		if prev, dup := addrs[u.Listen]; dup {
			d.problem(append(path, "listen"), "%s is already used by %s", quote(u.Listen), prev)
		}
		addrs[u.Listen] = "host " + quote(h.Name) + ".upload"
	}
}
