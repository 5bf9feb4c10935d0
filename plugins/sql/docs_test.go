package sqlbackend

import (
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestVCard(t *testing.T) { forEachDB(t, testVCard) }

func testVCard(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner = "zoë@例え.jp"
	_, err := s.GetVCard(ctx, owner)
	wantErr(t, "GetVCard of absent vCard", err, sdk.ErrNotFound)
	for _, v := range []string{"<vCard xmlns='vcard-temp'><FN>Zoë</FN></vCard>", "<vCard xmlns='vcard-temp'><FN>Z</FN></vCard>"} {
		if err := s.SetVCard(ctx, owner, v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetVCard(ctx, owner); got != v || err != nil {
			t.Errorf("GetVCard = %q, %v; want %q", got, err, v)
		}
	}
	if err := s.DeleteVCard(ctx, owner); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetVCard(ctx, owner)
	wantErr(t, "GetVCard after delete", err, sdk.ErrNotFound)
	if err := s.DeleteVCard(ctx, owner); err != nil {
		t.Errorf("DeleteVCard of absent vCard: %v", err)
	}
	wantErr(t, "SetVCard empty owner", s.SetVCard(ctx, "", "<vCard/>"), sdk.ErrInvalid)
	wantErr(t, "SetVCard bad xml text", s.SetVCard(ctx, owner, "\x00"), sdk.ErrInvalid)
	_, err = s.GetVCard(ctx, "")
	wantErr(t, "GetVCard empty owner", err, sdk.ErrInvalid)
	wantErr(t, "DeleteVCard empty owner", s.DeleteVCard(ctx, ""), sdk.ErrInvalid)
}

func TestPrivate(t *testing.T) { forEachDB(t, testPrivate) }

func testPrivate(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner, other = "ann@example.org", "bob@example.org"
	docs := []struct{ name, ns, xml string }{
		{"storage", "storage:bookmarks", "<storage xmlns='storage:bookmarks'/>"},
		{"storage", "storage:rosternotes", "<storage xmlns='storage:rosternotes'/>"},
		{"query", "jabber:iq:private", "<query xmlns='jabber:iq:private'>ü</query>"},
	}
	for _, d := range docs {
		if err := s.SetPrivate(ctx, owner, d.name, d.ns, d.xml); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPrivate(ctx, other, "storage", "storage:bookmarks", "<storage xmlns='storage:bookmarks'>b</storage>"); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if got, err := s.GetPrivate(ctx, owner, d.name, d.ns); got != d.xml || err != nil {
			t.Errorf("GetPrivate(%s, %s) = %q, %v; want %q", d.name, d.ns, got, err, d.xml)
		}
	}
	const replaced = "<storage xmlns='storage:bookmarks'><conference/></storage>"
	if err := s.SetPrivate(ctx, owner, "storage", "storage:bookmarks", replaced); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetPrivate(ctx, owner, "storage", "storage:bookmarks"); got != replaced {
		t.Errorf("after replace got %q", got)
	}
	_, err := s.GetPrivate(ctx, owner, "storage", "storage:other")
	wantErr(t, "GetPrivate of absent document", err, sdk.ErrNotFound)

	if err := s.DeletePrivate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		_, err := s.GetPrivate(ctx, owner, d.name, d.ns)
		wantErr(t, "GetPrivate after DeletePrivate", err, sdk.ErrNotFound)
	}
	if _, err := s.GetPrivate(ctx, other, "storage", "storage:bookmarks"); err != nil {
		t.Errorf("another owner's document was deleted: %v", err)
	}
	if err := s.DeletePrivate(ctx, "nobody@example.org"); err != nil {
		t.Errorf("DeletePrivate of unknown owner: %v", err)
	}

	_, err = s.GetPrivate(ctx, owner, "", "ns")
	wantErr(t, "GetPrivate empty name", err, sdk.ErrInvalid)
	_, err = s.GetPrivate(ctx, owner, "storage", "")
	wantErr(t, "GetPrivate empty namespace", err, sdk.ErrInvalid)
	wantErr(t, "SetPrivate empty owner", s.SetPrivate(ctx, "", "a", "b", "<a/>"), sdk.ErrInvalid)
	wantErr(t, "DeletePrivate empty owner", s.DeletePrivate(ctx, ""), sdk.ErrInvalid)
}
