package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/keyfile"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/upload"
)

// uploadKeySize is the size of the generated upload signing key.
const uploadKeySize = 32

// uploadDomains lists the upload services' domains, which the self-signed
// certificate made at first start covers too.
func uploadDomains(cfg *config.Config) []string {
	var out []string
	for _, h := range cfg.Hosts {
		if h.Upload != nil {
			out = append(out, h.Upload.Domain)
		}
	}
	return out
}

// uploadWarnings flags upload services whose URLs are plain http: XEP-0363
// requires TLS, and clients (Conversations, browsers on https pages)
// refuse such URLs or block them as mixed content.
func uploadWarnings(cfg *config.Config) config.Errors {
	var out config.Errors
	for _, h := range cfg.Hosts {
		if u := h.Upload; u != nil && strings.HasPrefix(u.URLBase, "http://") {
			out = append(out, config.Problem{Key: fmt.Sprintf("host %q.upload.url_base", h.Name), Msg: fmt.Sprintf(
				"%s is plain http: XEP-0363 wants https, and many clients refuse such links; put the listener behind a TLS proxy and set url_base to its https URL, or set tls = true", u.URLBase)})
		}
	}
	return out
}

// uploadCert loads the certificate of host h's upload listener, when it
// has one of its own; problems name the upload block's keys.
func uploadCert(h config.Host) (*tls.Certificate, *config.Problem) {
	u := h.Upload
	if u == nil || u.CertFile == "" {
		return nil, nil
	}
	cert, p := loadCert(u.CertFile, u.KeyFile)
	if p != nil {
		p.Key = strings.ReplaceAll(p.Key, "tls.", fmt.Sprintf("host %q.upload.", h.Name))
		return nil, p
	}
	return &cert, nil
}

// uploadCertProblems checks the upload listeners' own certificates.
func uploadCertProblems(cfg *config.Config) config.Errors {
	var out config.Errors
	for _, h := range cfg.Hosts {
		if _, p := uploadCert(h); p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// newUploadStore opens the store an upload block names.
func newUploadStore(ctx context.Context, key string, sc config.UploadStore) (upload.Store, error) {
	var (
		st  upload.Store
		err error
	)
	switch sc.Type {
	case "s3":
		st, err = upload.NewS3Store(ctx, upload.S3Config{
			Endpoint: sc.Endpoint, Bucket: sc.Bucket, Region: sc.Region,
			AccessKey: sc.AccessKey, SecretKey: sc.SecretKey, Prefix: sc.Prefix,
		})
	default:
		st, err = upload.NewDirStore(sc.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return st, nil
}

// startUploads starts the upload service of each host that has one: the
// component on its domain, its HTTP listener and its clean-up loop. stop
// shuts them down, waiting for uploads in flight until ctx ends.
func startUploads(cfg *config.Config, mods *modules.Server, tlsCfg *tls.Config, log hclog.Logger) (stop func(context.Context), err error) {
	type running struct {
		domain string
		svc    *upload.Service
		hs     *http.Server
	}
	var all []running
	var wg sync.WaitGroup
	stopAll := func(ctx context.Context) {
		for _, r := range all {
			mods.RemoveComponent(r.domain, r.svc)
			if r.hs != nil {
				if err := r.hs.Shutdown(ctx); err != nil {
					log.Warn("some uploads did not finish in time", "domain", r.domain, "error", err)
					r.hs.Close()
				}
			}
			r.svc.Close()
		}
		wg.Wait()
	}
	defer func() {
		if err != nil {
			stopAll(context.Background())
		}
	}()
	var key []byte
	for _, hc := range cfg.Hosts {
		uc := hc.Upload
		if uc == nil {
			continue
		}
		name := func(k string) string { return fmt.Sprintf("host %q.upload.%s", hc.Name, k) }
		cert, p := uploadCert(hc)
		if p != nil {
			return nil, config.Errors{*p}
		}
		secret := []byte(uc.Secret)
		if uc.Secret == "" {
			if key == nil {
				key, err = keyfile.LoadOrCreate(filepath.Join(cfg.Server.DataDir, "upload.key"), uploadKeySize,
					"upload signing key", "the upload URLs handed out and not used yet are then void")
				if err != nil {
					return nil, err
				}
			}
			secret = key
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := newUploadStore(sctx, name("store"), uc.Store)
		cancel()
		if err != nil {
			return nil, err
		}
		l := log.With("domain", uc.Domain)
		svc, err := upload.New(upload.Config{
			Domain: uc.Domain, Host: hc.Name, URLBase: uc.URLBase,
			MaxFileSize: uc.MaxFileSize, Quota: uc.Quota, Expire: uc.Expire,
			Key: secret, Store: st, Log: l,
		}, mods)
		if err != nil {
			return nil, err
		}
		if err := mods.AddComponent(uc.Domain, svc); err != nil {
			svc.Close()
			return nil, fmt.Errorf("%s: %w", name("domain"), err)
		}
		r := running{domain: uc.Domain, svc: svc}
		all = append(all, r)
		ln, err := net.Listen("tcp", uc.Listen)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name("listen"), err)
		}
		// No read or write timeout for whole requests: an upload or a
		// download may take long. The service bounds each upload by its
		// slot; idle connections go.
		hs := &http.Server{
			Handler: svc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			MaxHeaderBytes: 16 << 10, ErrorLog: l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		}
		if uc.TLS {
			hs.TLSConfig = tlsCfg.Clone()
			if cert != nil {
				hs.TLSConfig.GetCertificate = nil
				hs.TLSConfig.Certificates = []tls.Certificate{*cert}
			}
			ln = tls.NewListener(ln, hs.TLSConfig)
		}
		all[len(all)-1].hs = hs
		l.Info("upload service listening", "address", ln.Addr().String(), "tls", uc.TLS, "url_base", uc.URLBase, "store", uc.Store.Type)
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				l.Error("upload listener failed", "error", err)
			}
		})
		wg.Go(func() { svc.Run(context.Background()) })
	}
	return stopAll, nil
}
