package upload

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckFilename(t *testing.T) {
	for _, name := range []string{"photo.jpg", "résumé final.pdf", "a..b", "..hidden", "名前.png", strings.Repeat("x", 255)} {
		if msg := checkFilename(name); msg != "" {
			t.Errorf("%q refused: %s", name, msg)
		}
	}
	for _, name := range []string{"", ".", "..", "../../etc/passwd", "a/b", `..\..\boot.ini`, "nul\x00.txt",
		"line\nbreak", "tab\t", strings.Repeat("x", 256), "bad\xffutf8"} {
		if checkFilename(name) == "" {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestURLName(t *testing.T) {
	cases := map[string]string{
		"photo.jpg":              "photo.jpg",
		"my photo (1).JPG":       "my_photo__1_.JPG",
		"..hidden":               "hidden",
		"...":                    "file",
		"a?b#c%d&e.txt":          "a_b_c_d_e.txt",
		"café.txt":               "café.txt",
		"cafe\u0301.txt":         "café.txt", // NFC
		"<script>.html":          "_script_.html",
		"\u202egnp.exe":          "_gnp.exe", // right-to-left override is not a letter
		strings.Repeat("é", 200): strings.Repeat("é", 50),
	}
	for in, want := range cases {
		if got := urlName(in); got != want {
			t.Errorf("urlName(%q) = %q, want %q", in, got, want)
		}
		if !validURLName(urlName(in)) {
			t.Errorf("urlName(%q) = %q is not a valid URL name", in, urlName(in))
		}
	}
	long := strings.Repeat("a", 300) + ".tar.gz"
	got := urlName(long)
	if len(got) > maxURLName || !strings.HasSuffix(got, ".gz") {
		t.Errorf("long name: %q (%d bytes)", got, len(got))
	}
	for _, bad := range []string{"", ".x", "a/b", "a b", "a%2Fb", strings.Repeat("a", maxURLName+1), "..", "a\x00"} {
		if validURLName(bad) {
			t.Errorf("validURLName(%q) is true", bad)
		}
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newID()
		if !validID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "..", strings.Repeat("a", idLen-1), strings.Repeat("A", idLen), strings.Repeat("1", idLen), strings.Repeat("a", idLen-1) + "/"} {
		if validID(bad) {
			t.Errorf("validID(%q)", bad)
		}
	}
}

func TestSlotSignature(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	s := signer{key}
	now := time.Unix(1_700_000_000, 0)
	sl := Slot{ID: newID(), Name: "my_photo.jpg", Filename: "my photo.jpg", Size: 1234, ContentType: "image/jpeg", Expires: now.Add(time.Minute)}
	q, _ := url.ParseQuery(s.query(sl))
	got, err := s.verify(sl.ID, sl.Name, q, now)
	if err != nil || got != sl {
		t.Fatalf("verify: %+v %v, want %+v", got, err, sl)
	}
	if _, err := s.verify(sl.ID, sl.Name, q, sl.Expires); err != errExpired {
		t.Fatalf("at expiry: %v", err)
	}
	if _, err := (signer{[]byte(strings.Repeat("x", 32))}).verify(sl.ID, sl.Name, q, now); err != errBadSignature {
		t.Fatalf("other key: %v", err)
	}
	if _, err := s.verify(newID(), sl.Name, q, now); err != errBadSignature {
		t.Fatalf("other id: %v", err)
	}
	if _, err := s.verify(sl.ID, "other.jpg", q, now); err != errBadSignature {
		t.Fatalf("other name: %v", err)
	}
	for _, tamper := range []struct{ k, v string }{
		{qSize, "1235"}, {qSize, "-1"}, {qType, "text/html"}, {qExpires, "1900000000"}, {qName, "evil.html"}, {qSig, "AAAA"}, {qSig, "!!"},
	} {
		t2 := url.Values{}
		for k, v := range q {
			t2[k] = append([]string(nil), v...)
		}
		t2.Set(tamper.k, tamper.v)
		if _, err := s.verify(sl.ID, sl.Name, t2, now); err != errBadSignature {
			t.Errorf("tampered %s=%s: %v", tamper.k, tamper.v, err)
		}
	}
	// A slot with no content type must not verify with one added.
	sl2 := sl
	sl2.ContentType, sl2.Filename = "", sl2.Name
	q2, _ := url.ParseQuery(s.query(sl2))
	if q2.Has(qType) || q2.Has(qName) {
		t.Fatalf("query carries empty fields: %v", q2)
	}
	q2.Set(qType, "text/html")
	if _, err := s.verify(sl.ID, sl.Name, q2, now); err != errBadSignature {
		t.Fatalf("added type: %v", err)
	}
}

func TestParseMarker(t *testing.T) {
	id := newID()
	got, size, ok := parseMarker(markerKey("0123abcd", id, 42))
	if !ok || got != id || size != 42 {
		t.Fatalf("round trip: %q %d %v", got, size, ok)
	}
	for _, bad := range []string{"owners/x/" + id, "owners/x/" + id + "-", "owners/x/" + id + "-x", "owners/x/zz-1", "owners/x/" + id + "--1"} {
		if _, _, ok := parseMarker(bad); ok {
			t.Errorf("parseMarker(%q) ok", bad)
		}
	}
}
