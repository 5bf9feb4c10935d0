package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koi-im/koi/sdk/pb"
)

// server is the plugin side of the wire: it builds the backend at Configure
// and answers every service of koi_backend.proto from it.
type server struct {
	pb.UnimplementedPluginServer
	pb.UnimplementedAuthServer
	pb.UnimplementedAuthAdminServer
	pb.UnimplementedRosterServer
	pb.UnimplementedOfflineServer
	pb.UnimplementedVCardServer
	pb.UnimplementedPrivateServer
	pb.UnimplementedArchiveServer
	pb.UnimplementedBlocklistServer
	pb.UnimplementedTokensServer
	pb.UnimplementedMUCServer
	pb.UnimplementedPubSubServer

	factory Factory
	log     Logger

	mu          sync.Mutex
	backend     Backend
	caps        Capabilities
	configuring bool
	closed      bool
	// reconfigurable lets a later Configure replace the backend: in debug
	// mode every koi that attaches configures the plugin anew.
	reconfigurable bool
}

func newServer(f Factory, log Logger) *server {
	return &server{factory: f, log: log}
}

// close closes the backend once; later calls and calls racing with it see
// ErrUnavailable.
func (s *server) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	b := s.backend
	s.mu.Unlock()
	if b == nil {
		return nil
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("close backend: %w", err)
	}
	return nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "plugin is shutting down")
	case s.backend != nil && !s.reconfigurable:
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "plugin is already configured")
	case s.configuring:
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "plugin is being configured")
	}
	s.configuring = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.configuring = false
		s.mu.Unlock()
	}()

	if s.factory == nil {
		return nil, status.Error(codes.Internal, "plugin has no backend factory")
	}
	b, err := s.factory(ctx, Config{Raw: req.GetConfig()}, s.log)
	if err != nil {
		return nil, toStatus(err)
	}
	if b == nil {
		return nil, status.Error(codes.Internal, "backend factory returned no backend and no error")
	}
	caps := b.Capabilities()
	if err := validateCapabilities(b, caps); err != nil {
		_ = b.Close()
		return nil, toStatus(err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = b.Close()
		return nil, status.Error(codes.Unavailable, "plugin is shutting down")
	}
	old := s.backend
	s.backend, s.caps = b, caps
	s.mu.Unlock()
	if old != nil {
		// Calls of the previous host still in flight may fail: debug
		// mode only.
		s.log.Info("configured again by a newly attached host; closing the previous backend")
		if err := old.Close(); err != nil {
			s.log.Warn("closing the previous backend", "error", err)
		}
	}
	return &pb.ConfigureResponse{Capabilities: capsToPB(caps)}, nil
}

// validateCapabilities checks that b implements every interface caps
// promises, so that a plugin bug shows up at start, not at the first write.
func validateCapabilities(b Backend, caps Capabilities) error {
	var problems []string
	check := func(feature string, a Access, readOK, writeOK bool, readIface, writeIface string) {
		switch {
		case a < AccessNone || a > AccessReadWrite:
			problems = append(problems, fmt.Sprintf("%s: unknown access level %d", feature, int(a)))
		case a.Readable() && !readOK:
			problems = append(problems, fmt.Sprintf("declares %s %v but does not implement sdk.%s", feature, a, readIface))
		case a.Writable() && !writeOK:
			problems = append(problems, fmt.Sprintf("declares %s %v but does not implement sdk.%s", feature, a, writeIface))
		}
	}
	_, auth := b.(Auth)
	_, authAdmin := b.(AuthAdmin)
	_, roster := b.(Roster)
	_, rosterW := b.(RosterWriter)
	_, offline := b.(Offline)
	_, vcard := b.(VCard)
	_, vcardW := b.(VCardWriter)
	_, private := b.(Private)
	_, privateW := b.(PrivateWriter)
	_, archive := b.(Archive)
	_, blocklist := b.(Blocklist)
	_, blocklistW := b.(BlocklistWriter)
	check("auth", caps.Auth.Access, auth, authAdmin, "Auth", "AuthAdmin")
	check("roster", caps.Roster, roster, rosterW, "Roster", "RosterWriter")
	check("offline", caps.Offline, offline, offline, "Offline", "Offline")
	check("vcard", caps.VCard, vcard, vcardW, "VCard", "VCardWriter")
	check("private", caps.Private, private, privateW, "Private", "PrivateWriter")
	check("archive", caps.Archive.Access, archive, archive, "Archive", "Archive")
	check("blocklist", caps.Blocklist, blocklist, blocklistW, "Blocklist", "BlocklistWriter")
	_, tokens := b.(Tokens)
	_, tokensW := b.(TokensWriter)
	check("tokens", caps.Tokens, tokens, tokensW, "Tokens", "TokensWriter")
	_, muc := b.(MUC)
	_, mucW := b.(MUCWriter)
	check("muc", caps.MUC, muc, mucW, "MUC", "MUCWriter")
	_, pubsub := b.(PubSub)
	_, pubsubW := b.(PubSubWriter)
	check("pubsub", caps.PubSub, pubsub, pubsubW, "PubSub", "PubSubWriter")
	if caps.RosterBatch {
		if _, ok := b.(RosterBatchWriter); !ok {
			problems = append(problems, "declares roster batches but does not implement sdk.RosterBatchWriter")
		}
		if !caps.Roster.Writable() {
			problems = append(problems, "declares roster batches without a read-write roster")
		}
	}
	if caps.Archive.FullText && !caps.Archive.Access.Readable() {
		problems = append(problems, "declares archive full-text search without archive")
	}
	if caps.Archive.Retract {
		if _, ok := b.(ArchiveRetractor); !ok {
			problems = append(problems, "declares archive retraction but does not implement sdk.ArchiveRetractor")
		}
		if !caps.Archive.Access.Writable() {
			problems = append(problems, "declares archive retraction without archive")
		}
	}
	if caps.Auth.SCRAM && !caps.Auth.Access.Readable() {
		problems = append(problems, "declares SCRAM credentials without auth")
	}
	if caps.Auth.List {
		if _, ok := b.(UserLister); !ok {
			problems = append(problems, "declares auth listing but does not implement sdk.UserLister")
		}
		if !caps.Auth.Access.Readable() {
			problems = append(problems, "declares auth listing without auth")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: backend capabilities: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

func (s *server) Ping(ctx context.Context, _ *pb.PingRequest) (*pb.PingResponse, error) {
	b, _, err := s.state()
	if err != nil {
		return nil, err
	}
	if p, ok := b.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return nil, toStatus(err)
		}
	}
	return &pb.PingResponse{}, nil
}

// state returns the configured backend, or a status error saying why there
// is none.
func (s *server) state() (Backend, Capabilities, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, Capabilities{}, status.Error(codes.Unavailable, "plugin is shutting down")
	case s.backend == nil:
		return nil, Capabilities{}, status.Error(codes.Unavailable, "plugin is not configured yet")
	}
	return s.backend, s.caps, nil
}

// reader returns the backend as T when it declared feature readable.
func reader[T any](s *server, feature string, access func(Capabilities) Access) (T, error) {
	var zero T
	b, caps, err := s.state()
	if err != nil {
		return zero, err
	}
	t, ok := b.(T)
	if !access(caps).Readable() || !ok {
		return zero, status.Errorf(codes.Unimplemented, "backend does not serve %s", feature)
	}
	return t, nil
}

// writer returns the backend as T when it declared feature writable.
func writer[T any](s *server, feature string, access func(Capabilities) Access) (T, error) {
	var zero T
	b, caps, err := s.state()
	if err != nil {
		return zero, err
	}
	t, ok := b.(T)
	if !access(caps).Writable() || !ok {
		return zero, toStatus(fmt.Errorf("%w: backend does not accept %s changes", ErrReadOnly, feature))
	}
	return t, nil
}

func authAccess(c Capabilities) Access      { return c.Auth.Access }
func rosterAccess(c Capabilities) Access    { return c.Roster }
func offlineAccess(c Capabilities) Access   { return c.Offline }
func vcardAccess(c Capabilities) Access     { return c.VCard }
func privateAccess(c Capabilities) Access   { return c.Private }
func archiveAccess(c Capabilities) Access   { return c.Archive.Access }
func blocklistAccess(c Capabilities) Access { return c.Blocklist }
func tokensAccess(c Capabilities) Access    { return c.Tokens }
func mucAccess(c Capabilities) Access       { return c.MUC }

// reply converts a backend result: on error the status, otherwise resp().
func reply[R any](err error, resp func() R) (R, error) {
	if err != nil {
		var zero R
		return zero, toStatus(err)
	}
	return resp(), nil
}

func emptyReply(err error) (*pb.Empty, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

// Auth.

func (s *server) UserExists(ctx context.Context, req *pb.UserRequest) (*pb.BoolResponse, error) {
	a, err := reader[Auth](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	ok, err := a.UserExists(ctx, req.GetHost(), req.GetUser())
	return reply(err, func() *pb.BoolResponse { return &pb.BoolResponse{Value: ok} })
}

func (s *server) CheckPassword(ctx context.Context, req *pb.CheckPasswordRequest) (*pb.BoolResponse, error) {
	a, err := reader[Auth](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	ok, err := a.CheckPassword(ctx, req.GetHost(), req.GetUser(), req.GetPassword())
	return reply(err, func() *pb.BoolResponse { return &pb.BoolResponse{Value: ok} })
}

func (s *server) SCRAMCredentials(ctx context.Context, req *pb.SCRAMCredentialsRequest) (*pb.SCRAMCredentialsResponse, error) {
	a, err := reader[Auth](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	if _, caps, _ := s.state(); !caps.Auth.SCRAM {
		return nil, status.Error(codes.Unimplemented, "backend keeps no SCRAM credentials")
	}
	c, err := a.SCRAMCredentials(ctx, req.GetHost(), req.GetUser(), req.GetHash())
	return reply(err, func() *pb.SCRAMCredentialsResponse { return scramToPB(c) })
}

// AuthAdmin.

func (s *server) CreateUser(ctx context.Context, req *pb.PasswordRequest) (*pb.Empty, error) {
	a, err := writer[AuthAdmin](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	err = a.CreateUser(ctx, req.GetHost(), req.GetUser(), req.GetPassword())
	return emptyReply(err)
}

func (s *server) SetPassword(ctx context.Context, req *pb.PasswordRequest) (*pb.Empty, error) {
	a, err := writer[AuthAdmin](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	err = a.SetPassword(ctx, req.GetHost(), req.GetUser(), req.GetPassword())
	return emptyReply(err)
}

func (s *server) DeleteUser(ctx context.Context, req *pb.UserRequest) (*pb.Empty, error) {
	a, err := writer[AuthAdmin](s, "auth", authAccess)
	if err != nil {
		return nil, err
	}
	err = a.DeleteUser(ctx, req.GetHost(), req.GetUser())
	return emptyReply(err)
}

// ListUsers is a read that lives in AuthAdmin: a read-only backend answers
// it only when it declared AuthCapabilities.List (a directory that can
// enumerate cheaply); others refuse it as they refuse the writes.
func (s *server) ListUsers(ctx context.Context, req *pb.ListUsersRequest) (*pb.ListUsersResponse, error) {
	b, caps, err := s.state()
	if err != nil {
		return nil, err
	}
	a, ok := b.(UserLister)
	if !ok || !caps.Auth.CanList() {
		return nil, toStatus(fmt.Errorf("%w: backend cannot list its users", ErrReadOnly))
	}
	users, err := a.ListUsers(ctx, req.GetHost())
	return reply(err, func() *pb.ListUsersResponse { return &pb.ListUsersResponse{Users: users} })
}

// Roster.

func (s *server) GetRoster(ctx context.Context, req *pb.OwnerRequest) (*pb.RosterState, error) {
	r, err := reader[Roster](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	st, err := r.GetRoster(ctx, req.GetOwner())
	return reply(err, func() *pb.RosterState { return rosterToPB(st) })
}

func (s *server) SetItem(ctx context.Context, req *pb.SetItemRequest) (*pb.VersionResponse, error) {
	r, err := writer[RosterWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	if req.GetItem() == nil {
		return nil, toStatus(fmt.Errorf("%w: roster item missing", ErrInvalid))
	}
	v, err := r.SetItem(ctx, req.GetOwner(), rosterItemFromPB(req.GetItem()))
	return reply(err, func() *pb.VersionResponse { return &pb.VersionResponse{Version: v} })
}

func (s *server) DeleteItem(ctx context.Context, req *pb.ContactRequest) (*pb.VersionResponse, error) {
	r, err := writer[RosterWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	v, err := r.DeleteItem(ctx, req.GetOwner(), req.GetContact())
	return reply(err, func() *pb.VersionResponse { return &pb.VersionResponse{Version: v} })
}

func (s *server) SetPending(ctx context.Context, req *pb.SetPendingRequest) (*pb.Empty, error) {
	r, err := writer[RosterWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	if req.GetPending() == nil {
		return nil, toStatus(fmt.Errorf("%w: pending subscription missing", ErrInvalid))
	}
	err = r.SetPending(ctx, req.GetOwner(), pendingFromPB(req.GetPending()))
	return emptyReply(err)
}

func (s *server) DeletePending(ctx context.Context, req *pb.ContactRequest) (*pb.Empty, error) {
	r, err := writer[RosterWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	err = r.DeletePending(ctx, req.GetOwner(), req.GetContact())
	return emptyReply(err)
}

func (s *server) ApplyRosterChanges(ctx context.Context, req *pb.RosterChangesRequest) (*pb.RosterVersionsResponse, error) {
	r, err := writer[RosterBatchWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	if _, caps, _ := s.state(); !caps.RosterBatch {
		return nil, status.Error(codes.Unimplemented, "backend does not serve roster batches")
	}
	v, err := r.ApplyRosterChanges(ctx, rosterChangesFromPB(req))
	return reply(err, func() *pb.RosterVersionsResponse { return &pb.RosterVersionsResponse{Versions: v} })
}

func (s *server) DeleteRoster(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	r, err := writer[RosterWriter](s, "roster", rosterAccess)
	if err != nil {
		return nil, err
	}
	err = r.DeleteRoster(ctx, req.GetOwner())
	return emptyReply(err)
}

// Offline: Count and Pop are reads, Store and DeleteAll writes.

func (s *server) Store(ctx context.Context, req *pb.StoreRequest) (*pb.Empty, error) {
	o, err := writer[Offline](s, "offline", offlineAccess)
	if err != nil {
		return nil, err
	}
	if req.GetMessage() == nil {
		return nil, toStatus(fmt.Errorf("%w: offline message missing", ErrInvalid))
	}
	err = o.Store(ctx, req.GetOwner(), offlineFromPB(req.GetMessage()))
	return emptyReply(err)
}

func (s *server) Count(ctx context.Context, req *pb.OwnerRequest) (*pb.CountResponse, error) {
	o, err := reader[Offline](s, "offline", offlineAccess)
	if err != nil {
		return nil, err
	}
	n, err := o.Count(ctx, req.GetOwner())
	return reply(err, func() *pb.CountResponse { return &pb.CountResponse{Count: int64(n)} })
}

func (s *server) Pop(ctx context.Context, req *pb.OwnerRequest) (*pb.PopResponse, error) {
	o, err := reader[Offline](s, "offline", offlineAccess)
	if err != nil {
		return nil, err
	}
	msgs, err := o.Pop(ctx, req.GetOwner())
	return reply(err, func() *pb.PopResponse {
		out := &pb.PopResponse{Messages: make([]*pb.OfflineMessage, 0, len(msgs))}
		for _, m := range msgs {
			out.Messages = append(out.Messages, offlineToPB(m))
		}
		return out
	})
}

func (s *server) DeleteAll(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	o, err := writer[Offline](s, "offline", offlineAccess)
	if err != nil {
		return nil, err
	}
	err = o.DeleteAll(ctx, req.GetOwner())
	return emptyReply(err)
}

// VCard.

func (s *server) GetVCard(ctx context.Context, req *pb.OwnerRequest) (*pb.DocumentResponse, error) {
	v, err := reader[VCard](s, "vcard", vcardAccess)
	if err != nil {
		return nil, err
	}
	doc, err := v.GetVCard(ctx, req.GetOwner())
	return reply(err, func() *pb.DocumentResponse { return &pb.DocumentResponse{Xml: doc} })
}

func (s *server) SetVCard(ctx context.Context, req *pb.SetVCardRequest) (*pb.Empty, error) {
	v, err := writer[VCardWriter](s, "vcard", vcardAccess)
	if err != nil {
		return nil, err
	}
	err = v.SetVCard(ctx, req.GetOwner(), req.GetVcard())
	return emptyReply(err)
}

func (s *server) DeleteVCard(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	v, err := writer[VCardWriter](s, "vcard", vcardAccess)
	if err != nil {
		return nil, err
	}
	err = v.DeleteVCard(ctx, req.GetOwner())
	return emptyReply(err)
}

// Private.

func (s *server) GetPrivate(ctx context.Context, req *pb.GetPrivateRequest) (*pb.DocumentResponse, error) {
	p, err := reader[Private](s, "private", privateAccess)
	if err != nil {
		return nil, err
	}
	doc, err := p.GetPrivate(ctx, req.GetOwner(), req.GetName(), req.GetNamespace())
	return reply(err, func() *pb.DocumentResponse { return &pb.DocumentResponse{Xml: doc} })
}

func (s *server) SetPrivate(ctx context.Context, req *pb.SetPrivateRequest) (*pb.Empty, error) {
	p, err := writer[PrivateWriter](s, "private", privateAccess)
	if err != nil {
		return nil, err
	}
	err = p.SetPrivate(ctx, req.GetOwner(), req.GetName(), req.GetNamespace(), req.GetXml())
	return emptyReply(err)
}

func (s *server) DeletePrivate(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	p, err := writer[PrivateWriter](s, "private", privateAccess)
	if err != nil {
		return nil, err
	}
	err = p.DeletePrivate(ctx, req.GetOwner())
	return emptyReply(err)
}

// Blocklist.

func (s *server) GetBlocklist(ctx context.Context, req *pb.OwnerRequest) (*pb.BlocklistResponse, error) {
	b, err := reader[Blocklist](s, "blocklist", blocklistAccess)
	if err != nil {
		return nil, err
	}
	jids, err := b.GetBlocklist(ctx, req.GetOwner())
	return reply(err, func() *pb.BlocklistResponse { return &pb.BlocklistResponse{Jids: jids} })
}

func (s *server) Block(ctx context.Context, req *pb.BlocklistRequest) (*pb.Empty, error) {
	b, err := writer[BlocklistWriter](s, "blocklist", blocklistAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.Block(ctx, req.GetOwner(), req.GetJids()))
}

func (s *server) Unblock(ctx context.Context, req *pb.BlocklistRequest) (*pb.Empty, error) {
	b, err := writer[BlocklistWriter](s, "blocklist", blocklistAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.Unblock(ctx, req.GetOwner(), req.GetJids()))
}

func (s *server) UnblockAll(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	b, err := writer[BlocklistWriter](s, "blocklist", blocklistAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.UnblockAll(ctx, req.GetOwner()))
}

// Tokens.

func (s *server) GetTokens(ctx context.Context, req *pb.TokensRequest) (*pb.TokensResponse, error) {
	b, err := reader[Tokens](s, "tokens", tokensAccess)
	if err != nil {
		return nil, err
	}
	toks, err := b.GetTokens(ctx, req.GetOwner(), req.GetAgent())
	return reply(err, func() *pb.TokensResponse {
		out := &pb.TokensResponse{Tokens: make([]*pb.Token, 0, len(toks))}
		for _, t := range toks {
			out.Tokens = append(out.Tokens, tokenToPB(t))
		}
		return out
	})
}

func (s *server) PutToken(ctx context.Context, req *pb.Token) (*pb.Empty, error) {
	b, err := writer[TokensWriter](s, "tokens", tokensAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.PutToken(ctx, tokenFromPB(req)))
}

func (s *server) DeleteToken(ctx context.Context, req *pb.DeleteTokenRequest) (*pb.Empty, error) {
	b, err := writer[TokensWriter](s, "tokens", tokensAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.DeleteToken(ctx, req.GetOwner(), req.GetAgent(), req.GetHash()))
}

func (s *server) DeleteTokens(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	b, err := writer[TokensWriter](s, "tokens", tokensAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.DeleteTokens(ctx, req.GetOwner()))
}

// MUC.

func (s *server) GetMUCRoom(ctx context.Context, req *pb.MUCRoomRequest) (*pb.MUCRoom, error) {
	b, err := reader[MUC](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	r, err := b.GetMUCRoom(ctx, req.GetRoom())
	return reply(err, func() *pb.MUCRoom { return mucRoomToPB(r) })
}

func (s *server) ListMUCRooms(ctx context.Context, req *pb.MUCServiceRequest) (*pb.MUCRoomsResponse, error) {
	b, err := reader[MUC](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	rooms, err := b.ListMUCRooms(ctx, req.GetService())
	return reply(err, func() *pb.MUCRoomsResponse {
		out := &pb.MUCRoomsResponse{Rooms: make([]*pb.MUCRoom, 0, len(rooms))}
		for _, r := range rooms {
			out.Rooms = append(out.Rooms, mucRoomToPB(r))
		}
		return out
	})
}

func (s *server) GetMUCAffiliations(ctx context.Context, req *pb.MUCRoomRequest) (*pb.MUCAffiliationsResponse, error) {
	b, err := reader[MUC](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	affs, err := b.GetMUCAffiliations(ctx, req.GetRoom())
	return reply(err, func() *pb.MUCAffiliationsResponse {
		out := &pb.MUCAffiliationsResponse{Affiliations: make([]*pb.MUCAffiliation, 0, len(affs))}
		for _, a := range affs {
			out.Affiliations = append(out.Affiliations, mucAffiliationToPB(a))
		}
		return out
	})
}

func (s *server) PutMUCRoom(ctx context.Context, req *pb.MUCRoom) (*pb.Empty, error) {
	b, err := writer[MUCWriter](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	r, err := mucRoomFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return emptyReply(b.PutMUCRoom(ctx, r))
}

func (s *server) DeleteMUCRoom(ctx context.Context, req *pb.MUCRoomRequest) (*pb.Empty, error) {
	b, err := writer[MUCWriter](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.DeleteMUCRoom(ctx, req.GetRoom()))
}

func (s *server) SetMUCAffiliation(ctx context.Context, req *pb.MUCAffiliation) (*pb.Empty, error) {
	b, err := writer[MUCWriter](s, "muc", mucAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(b.SetMUCAffiliation(ctx, mucAffiliationFromPB(req)))
}

// recoverUnary keeps a panic in one backend call from taking the whole
// plugin, and every call in flight, down with it.
func recoverUnary(log Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("backend panicked", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "backend panicked in %s: %v", info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
}

var errNoFactory = errors.New("sdk.Serve: nil Factory")
