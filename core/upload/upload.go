// Package upload is XEP-0363 HTTP File Upload: a service on a domain of
// its own (upload.example.com) that hands the users of one host upload
// slots, and the HTTP server that takes the files and serves them.
//
// Namespaces: urn:xmpp:http:upload:0 (slot requests), disco#info and
// disco#items of the service, urn:xmpp:ping.
//
// A slot's PUT URL carries its terms (id, name, size, content type,
// expiry) signed with HMAC-SHA-256 under a server key, so the HTTP side
// checks an upload without shared state; its GET URL, /ID/NAME, is
// stable, and the random id is what keeps it private (XEP-0363 §8).
// Files go to a Store (a local directory or an S3 bucket) whole or not at
// all; a slot's id can be stored once.
//
// Quota: every slot handed out leaves a small marker in the store under
// the user's key, naming the slot and its size, and a user's usage is the
// sum over their markers: files kept and slots not used yet. Expiry: a
// clean-up pass deletes files older than Expire and the markers of files
// that are gone or were never uploaded.
package upload

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces the service answers.
const (
	NS           = "urn:xmpp:http:upload:0"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
	NSData       = dataform.NS
	NSPing       = "urn:xmpp:ping"
)

// DefaultSlotLifetime is how long a PUT URL works: XEP-0363 §7 recommends
// a short time, as a client uploads at once.
const DefaultSlotLifetime = 5 * time.Minute

// putGrace and minUploadRate bound how long an upload may run after its
// slot expired (it must have started before): long enough for a slow
// mobile link, short enough that an abandoned slot stops counting against
// the quota. Both sides compute it from the slot alone.
const (
	putGrace      = 10 * time.Minute
	minUploadRate = 64 << 10 // bytes per second
)

// uploadDeadline is when an upload of sl must be complete.
func uploadDeadline(sl Slot) time.Time {
	return sl.Expires.Add(putGrace + time.Duration(sl.Size/minUploadRate)*time.Second)
}

// maxWorkers bounds the slot requests handled at once; more wait for none
// and get a wait-type error.
const maxWorkers = 32

// storeTimeout bounds the store calls for one slot request.
const storeTimeout = 30 * time.Second

// Config is one upload service.
type Config struct {
	Domain string // the service's JID, like upload.example.com
	Host   string // the served host whose users may upload
	// URLBase is where the HTTP side is reached, without a trailing
	// slash: https://upload.example.com:5281, or a proxy's URL. Slot URLs
	// are URLBase/ID/NAME.
	URLBase      string
	MaxFileSize  int64         // bytes; larger requests get file-too-large
	Quota        int64         // bytes per user, files and open slots; 0: no quota
	Expire       time.Duration // files are deleted this long after upload; 0: kept
	SlotLifetime time.Duration // 0: DefaultSlotLifetime
	Key          []byte        // the signing key, at least 32 bytes
	Store        Store
	Log          hclog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Router delivers the service's answers (modules.Server implements it).
type Router interface {
	Route(ctx context.Context, el *xmlstream.Element)
}

// Service is one running upload service: modules.Component for its
// domain, http.Handler for its files.
type Service struct {
	cfg    Config
	sign   signer
	router Router
	log    hclog.Logger

	ctx    context.Context // ends with Close: in-flight requests stop
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	// closeMu orders the requests' wg.Add before Close's Wait: a
	// WaitGroup must not be added to while it is waited for.
	closeMu sync.Mutex
	closed  bool

	mu    sync.Mutex
	users map[string]*userLock // serialises each user's quota check and marker
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

// New makes the service; Close stops it.
func New(cfg Config, r Router) (*Service, error) {
	switch {
	case cfg.Domain == "" || cfg.Host == "":
		return nil, fmt.Errorf("upload: domain and host are required")
	case len(cfg.Key) < 32:
		return nil, fmt.Errorf("upload %s: the signing key must have at least 32 bytes", cfg.Domain)
	case cfg.Store == nil:
		return nil, fmt.Errorf("upload %s: no store", cfg.Domain)
	case cfg.MaxFileSize <= 0:
		return nil, fmt.Errorf("upload %s: max file size must be positive", cfg.Domain)
	}
	if _, err := url.Parse(cfg.URLBase); err != nil || !strings.HasPrefix(cfg.URLBase, "http") {
		return nil, fmt.Errorf("upload %s: URL base %q is not an http(s) URL", cfg.Domain, cfg.URLBase)
	}
	cfg.URLBase = strings.TrimSuffix(cfg.URLBase, "/")
	if cfg.SlotLifetime <= 0 {
		cfg.SlotLifetime = DefaultSlotLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, sign: signer{cfg.Key}, router: r, log: cfg.Log,
		ctx: ctx, cancel: cancel, sem: make(chan struct{}, maxWorkers),
		users: map[string]*userLock{},
	}, nil
}

// Close stops the clean-up loop and waits for the slot requests in
// flight.
func (s *Service) Close() {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Deliver implements modules.Component: a stanza a user sent to the
// service's domain. Slot requests touch the store, so they are answered
// on a goroutine of their own.
func (s *Service) Deliver(ctx context.Context, el *xmlstream.Element) {
	typ := el.Attr("type")
	switch el.Local {
	case "message":
		if typ != "error" {
			s.fail(ctx, el, stanza.ErrServiceUnavailable, nil)
		}
		return
	case "iq":
	default:
		return // presence: nothing to say to it
	}
	if typ != "get" && typ != "set" {
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	q := el.FirstChild()
	switch {
	case err != nil || !to.IsDomain():
		s.fail(ctx, el, stanza.ErrServiceUnavailable, nil)
	case q == nil:
		s.fail(ctx, el, stanza.ErrBadRequest, nil)
	case typ == "get" && q.Space == NS && q.Local == "request":
		select {
		case s.sem <- struct{}{}:
		default:
			s.fail(ctx, el, stanza.ErrResourceConstraint.WithText("the upload service is busy; try again"), nil)
			return
		}
		el = el.Copy()
		s.closeMu.Lock()
		if s.closed {
			s.closeMu.Unlock()
			<-s.sem
			s.fail(ctx, el, stanza.ErrServiceUnavailable.WithText("the upload service is shutting down"), nil)
			return
		}
		s.wg.Add(1)
		s.closeMu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
			defer cancel()
			s.request(ctx, el)
		}()
	case typ == "get" && q.Space == NSDiscoInfo && q.Local == "query":
		if q.Attr("node") != "" {
			s.fail(ctx, el, stanza.ErrItemNotFound, nil)
			return
		}
		s.router.Route(ctx, stanza.Result(el, s.discoInfo()))
	case typ == "get" && q.Space == NSDiscoItems && q.Local == "query":
		if q.Attr("node") != "" {
			s.fail(ctx, el, stanza.ErrItemNotFound, nil)
			return
		}
		s.router.Route(ctx, stanza.Result(el, xmlstream.NewElement(NSDiscoItems, "query")))
	case typ == "get" && q.Space == NSPing && q.Local == "ping":
		s.router.Route(ctx, stanza.Result(el, nil))
	default:
		s.fail(ctx, el, stanza.ErrServiceUnavailable, nil)
	}
}

// discoInfo is the service's disco#info (XEP-0363 §3), with the size
// limit as a XEP-0128 form.
func (s *Service) discoInfo() *xmlstream.Element {
	q := xmlstream.NewElement(NSDiscoInfo, "query")
	q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").
		SetAttr("category", "store").SetAttr("type", "file").SetAttr("name", "HTTP File Upload"))
	for _, f := range []string{NSDiscoInfo, NS, NSPing} {
		q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
	}
	return q.AppendChild(dataform.Build("result", NS, "", "", []dataform.Field{
		{Var: "max-file-size", Values: []string{strconv.FormatInt(s.cfg.MaxFileSize, 10)}},
	}))
}

// request answers a slot request.
func (s *Service) request(ctx context.Context, el *xmlstream.Element) {
	req := el.FirstChild()
	from, err := jid.Parse(el.Attr("from"))
	if err != nil || from.Local() == "" || from.Domain() != s.cfg.Host {
		s.fail(ctx, el, stanza.ErrNotAllowed.WithText("only users of "+s.cfg.Host+" may upload files here"), req)
		return
	}
	name := req.Attr("filename")
	if msg := checkFilename(name); msg != "" {
		s.fail(ctx, el, stanza.ErrBadRequest.WithText(msg), req)
		return
	}
	size, err := strconv.ParseInt(req.Attr("size"), 10, 64)
	if err != nil || size < 1 {
		s.fail(ctx, el, stanza.ErrBadRequest.WithText("the size attribute must be the file's size in bytes, at least 1"), req)
		return
	}
	if size > s.cfg.MaxFileSize {
		s.fail(ctx, el, stanza.ErrNotAcceptable.WithText(fmt.Sprintf("File too large. The maximum file size is %d bytes", s.cfg.MaxFileSize)),
			req, xmlstream.NewElement(NS, "file-too-large").AppendChild(
				xmlstream.NewElement(NS, "max-file-size").AppendText(strconv.FormatInt(s.cfg.MaxFileSize, 10))))
		return
	}
	ctype := ""
	if c := req.Attr("content-type"); c != "" {
		mt, params, err := mime.ParseMediaType(c)
		if err != nil || !strings.Contains(mt, "/") {
			s.fail(ctx, el, stanza.ErrBadRequest.WithText("the content-type attribute is not a media type"), req)
			return
		}
		ctype = mime.FormatMediaType(mt, params)
	}

	owner := s.ownerKey(from.Bare())
	unlock := s.lockUser(owner)
	defer unlock()
	if s.cfg.Quota > 0 {
		used, oldest, err := s.usage(ctx, owner)
		if err != nil {
			s.log.Error("cannot read the upload quota", "user", from.Bare().String(), "error", err)
			s.fail(ctx, el, stanza.ErrInternal, req)
			return
		}
		if used+size > s.cfg.Quota {
			var retry *xmlstream.Element
			if s.cfg.Expire > 0 && !oldest.IsZero() {
				// When the oldest upload expires, its space is free again.
				at := oldest.Add(s.cfg.Expire + cleanupInterval(s.cfg.Expire)).UTC()
				retry = xmlstream.NewElement(NS, "retry").SetAttr("stamp", at.Format("2006-01-02T15:04:05Z"))
			}
			s.fail(ctx, el, stanza.ErrResourceConstraint.WithText(fmt.Sprintf(
				"Quota reached: %d of %d bytes used, the file needs %d", used, s.cfg.Quota, size)), req, retry)
			return
		}
	}
	sl := Slot{
		ID: newID(), Name: urlName(name), Filename: name, Size: size, ContentType: ctype,
		Expires: s.cfg.Now().Add(s.cfg.SlotLifetime).Truncate(time.Second),
	}
	if err := s.cfg.Store.Put(ctx, markerKey(owner, sl.ID, size), strings.NewReader(""), 0, Meta{}); err != nil {
		s.log.Error("cannot record an upload slot", "user", from.Bare().String(), "error", err)
		s.fail(ctx, el, stanza.ErrInternal, req)
		return
	}
	s.log.Debug("upload slot", "user", from.Bare().String(), "id", sl.ID, "size", size, "type", ctype)
	get := s.cfg.URLBase + "/" + sl.ID + "/" + url.PathEscape(sl.Name)
	slot := xmlstream.NewElement(NS, "slot")
	slot.AppendChild(xmlstream.NewElement(NS, "put").SetAttr("url", get+"?"+s.sign.query(sl)))
	slot.AppendChild(xmlstream.NewElement(NS, "get").SetAttr("url", get))
	s.router.Route(ctx, stanza.Result(el, slot))
}

// fail answers el with an error; an upload error repeats the request
// (XEP-0363 §4) and may carry an element of the upload namespace.
func (s *Service) fail(ctx context.Context, el *xmlstream.Element, e *stanza.Error, req *xmlstream.Element, extra ...*xmlstream.Element) {
	r := stanza.ErrorReply(el, e)
	if req != nil {
		r.Children = append([]xmlstream.Node{{Elem: req.Copy()}}, r.Children...)
	}
	if errEl := r.Child(xmlstream.NSClient, "error"); errEl != nil {
		for _, x := range extra {
			if x != nil {
				errEl.AppendChild(x)
			}
		}
	}
	s.router.Route(ctx, r)
}

// ownerKey names a user in the store: a keyed hash, so the store's
// listing shows no addresses and nobody can place a marker for a user
// without the key.
func (s *Service) ownerKey(bare jid.JID) string {
	mac := hmac.New(sha256.New, s.cfg.Key)
	mac.Write([]byte("koi-upload-owner\x00"))
	mac.Write([]byte(bare.String()))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func (s *Service) lockUser(owner string) (unlock func()) {
	s.mu.Lock()
	l := s.users[owner]
	if l == nil {
		l = &userLock{}
		s.users[owner] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.users, owner)
		}
		s.mu.Unlock()
	}
}

// markerKey is the quota marker of a slot.
func markerKey(owner, id string, size int64) string {
	return ownersPrefix + owner + "/" + id + "-" + strconv.FormatInt(size, 10)
}

// parseMarker reads a marker's key.
func parseMarker(key string) (id string, size int64, ok bool) {
	id, n, ok := strings.Cut(path.Base(key), "-")
	if !ok || !validID(id) {
		return "", 0, false
	}
	size, err := strconv.ParseInt(n, 10, 64)
	return id, size, err == nil && size >= 0
}

// usage sums a user's markers, and finds the oldest.
func (s *Service) usage(ctx context.Context, owner string) (used int64, oldest time.Time, err error) {
	err = s.cfg.Store.List(ctx, ownersPrefix+owner+"/", func(i Info) error {
		if _, size, ok := parseMarker(i.Key); ok {
			used += size
			if oldest.IsZero() || i.Modified.Before(oldest) {
				oldest = i.Modified
			}
		}
		return nil
	})
	return used, oldest, err
}
