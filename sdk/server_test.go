package sdk

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koi-im/koi/sdk/pb"
)

// rosterReader serves rosters read-only and declares whatever caps says.
type rosterReader struct {
	caps   Capabilities
	closed bool
}

func (r *rosterReader) Capabilities() Capabilities { return r.caps }
func (r *rosterReader) Close() error               { r.closed = true; return nil }
func (r *rosterReader) GetRoster(context.Context, string) (RosterState, error) {
	return RosterState{Version: "7"}, nil
}

func TestConfigureValidatesCapabilities(t *testing.T) {
	tests := []struct {
		name    string
		caps    Capabilities
		wantErr []string
	}{
		{name: "honest", caps: Capabilities{Roster: AccessRead}},
		{name: "nothing", caps: Capabilities{}},
		{name: "writer missing", caps: Capabilities{Roster: AccessReadWrite},
			wantErr: []string{"declares roster read-write but does not implement sdk.RosterWriter"}},
		{name: "several missing", caps: Capabilities{Auth: AuthCapabilities{Access: AccessRead}, VCard: AccessRead},
			wantErr: []string{"does not implement sdk.Auth", "does not implement sdk.VCard"}},
		{name: "scram without auth", caps: Capabilities{Auth: AuthCapabilities{SCRAM: true}},
			wantErr: []string{"SCRAM credentials without auth"}},
		{name: "listing without UserLister", caps: Capabilities{Roster: AccessRead, Auth: AuthCapabilities{List: true}},
			wantErr: []string{"does not implement sdk.UserLister", "auth listing without auth"}},
		{name: "bad access", caps: Capabilities{Private: Access(7)},
			wantErr: []string{"private: unknown access level 7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &rosterReader{caps: tt.caps}
			s := newServer(func(context.Context, Config, Logger) (Backend, error) { return b, nil }, hclog.NewNullLogger())
			resp, err := s.Configure(context.Background(), &pb.ConfigureRequest{Config: []byte("{}")})
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				if got := capsFromPB(resp.GetCapabilities()); got != tt.caps {
					t.Errorf("capabilities = %+v, want %+v", got, tt.caps)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("code = %v, want InvalidArgument", status.Code(err))
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not contain %q", err, w)
				}
			}
			if !b.closed {
				t.Error("rejected backend not closed")
			}
		})
	}
}

func TestServerRefusesUndeclared(t *testing.T) {
	b := &rosterReader{caps: Capabilities{Roster: AccessRead}}
	s := newServer(func(context.Context, Config, Logger) (Backend, error) { return b, nil }, hclog.NewNullLogger())
	ctx := context.Background()

	// Before Configure everything is unavailable.
	_, err := s.GetRoster(ctx, &pb.OwnerRequest{Owner: "a@b"})
	if !errors.Is(fromStatus(ctx, err), ErrUnavailable) {
		t.Errorf("GetRoster before Configure: %v", err)
	}
	if _, err := s.Configure(ctx, &pb.ConfigureRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Configure(ctx, &pb.ConfigureRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second Configure: %v", err)
	}
	if r, err := s.GetRoster(ctx, &pb.OwnerRequest{Owner: "a@b"}); err != nil || r.GetVersion() != "7" {
		t.Errorf("GetRoster = %v, %v", r, err)
	}
	_, err = s.SetItem(ctx, &pb.SetItemRequest{Owner: "a@b", Item: &pb.RosterItem{Jid: "c@d"}})
	if !errors.Is(fromStatus(ctx, err), ErrReadOnly) {
		t.Errorf("SetItem on a read-only roster: %v", err)
	}
	_, err = s.GetVCard(ctx, &pb.OwnerRequest{Owner: "a@b"})
	if got := fromStatus(ctx, err); !errors.Is(got, errors.ErrUnsupported) || !strings.Contains(got.Error(), "does not serve vcard") {
		t.Errorf("GetVCard on a backend without vCards: %v", got)
	}
	if err := s.close(); err != nil || !b.closed {
		t.Errorf("close = %v, closed %v", err, b.closed)
	}
	_, err = s.GetRoster(ctx, &pb.OwnerRequest{Owner: "a@b"})
	if !errors.Is(fromStatus(ctx, err), ErrUnavailable) {
		t.Errorf("GetRoster after close: %v", err)
	}
}

// directory is a read-only auth backend that may declare listing.
type directory struct{ list bool }

func (d directory) Capabilities() Capabilities {
	return Capabilities{Auth: AuthCapabilities{Access: AccessRead, List: d.list}}
}
func (directory) Close() error                                             { return nil }
func (directory) UserExists(context.Context, string, string) (bool, error) { return true, nil }
func (directory) CheckPassword(context.Context, string, string, string) (bool, error) {
	return false, nil
}
func (directory) SCRAMCredentials(context.Context, string, string, string) (SCRAMCredentials, error) {
	return SCRAMCredentials{}, ErrNotFound
}
func (directory) ListUsers(context.Context, string) ([]string, error) {
	return []string{"alice", "bob"}, nil
}

// A read-only auth backend answers ListUsers only when it declared
// listing; writes stay refused either way.
func TestReadOnlyListing(t *testing.T) {
	ctx := context.Background()
	for _, list := range []bool{true, false} {
		s := newServer(func(context.Context, Config, Logger) (Backend, error) { return directory{list}, nil }, hclog.NewNullLogger())
		resp, err := s.Configure(ctx, &pb.ConfigureRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if caps := capsFromPB(resp.GetCapabilities()); caps.Auth.List != list || caps.Auth.CanList() != list {
			t.Errorf("list %v: capabilities over the wire %+v", list, caps.Auth)
		}
		users, err := s.ListUsers(ctx, &pb.ListUsersRequest{Host: "example.org"})
		if list && (err != nil || strings.Join(users.GetUsers(), ",") != "alice,bob") {
			t.Errorf("ListUsers of a listing directory = %v, %v", users, err)
		}
		if !list && !errors.Is(fromStatus(ctx, err), ErrReadOnly) {
			t.Errorf("ListUsers of a directory that cannot list: %v", err)
		}
		_, err = s.CreateUser(ctx, &pb.PasswordRequest{Host: "example.org", User: "carol", Password: "pw"})
		if !errors.Is(fromStatus(ctx, err), ErrReadOnly) {
			t.Errorf("list %v: CreateUser: %v", list, err)
		}
	}
}
