package muc

import "github.com/koi-im/koi/core/stanza"

// Role is an occupant's role in a room for the time of its visit
// (XEP-0045 §5.1), ordered so that a greater role can do more.
type Role int8

// The roles.
const (
	RoleNone Role = iota
	RoleVisitor
	RoleParticipant
	RoleModerator
)

func (r Role) String() string {
	switch r {
	case RoleVisitor:
		return "visitor"
	case RoleParticipant:
		return "participant"
	case RoleModerator:
		return "moderator"
	}
	return "none"
}

func parseRole(s string) (Role, bool) {
	switch s {
	case "none":
		return RoleNone, true
	case "visitor":
		return RoleVisitor, true
	case "participant":
		return RoleParticipant, true
	case "moderator":
		return RoleModerator, true
	}
	return RoleNone, false
}

// Affiliation is a user's long-lived standing with a room (XEP-0045 §5.2),
// ordered from outcast to owner.
type Affiliation int8

// The affiliations.
const (
	AffOutcast Affiliation = iota - 1
	AffNone
	AffMember
	AffAdmin
	AffOwner
)

func (a Affiliation) String() string {
	switch a {
	case AffOutcast:
		return "outcast"
	case AffMember:
		return "member"
	case AffAdmin:
		return "admin"
	case AffOwner:
		return "owner"
	}
	return "none"
}

func parseAffiliation(s string) (Affiliation, bool) {
	switch s {
	case "outcast":
		return AffOutcast, true
	case "none":
		return AffNone, true
	case "member":
		return AffMember, true
	case "admin":
		return AffAdmin, true
	case "owner":
		return AffOwner, true
	}
	return AffNone, false
}

// defaultRole is the role a user with affiliation a gets on entering a room
// (XEP-0045 §5.1.1 and §5.2): moderators for admins and owners, visitors
// for unaffiliated users of a moderated room, none (no entry) for outcasts.
func defaultRole(a Affiliation, moderated bool) Role {
	switch {
	case a >= AffAdmin:
		return RoleModerator
	case a == AffMember:
		return RoleParticipant
	case a == AffNone && moderated:
		return RoleVisitor
	case a == AffNone:
		return RoleParticipant
	}
	return RoleNone
}

// errNotModerator and errRank are the two refusals of role changes: the
// actor lacks the role (XEP-0045 §8: forbidden), or acts above its rank
// (§8.2, §9.7: not-allowed).
var (
	errNotModerator = stanza.ErrForbidden.WithText("only moderators may change roles")
	errRank         = stanza.ErrNotAllowed.WithText("that occupant's affiliation is too high for you")
	errModRank      = stanza.ErrNotAllowed.WithText("only admins and owners may grant or revoke moderation")
	errAdminsStay   = stanza.ErrNotAllowed.WithText("admins and owners are always moderators")
	errNotAdmin     = stanza.ErrForbidden.WithText("only admins and owners may change affiliations")
	errAffRank      = stanza.ErrNotAllowed.WithText("only owners may change the affiliation of admins and owners, or grant them")
	errLastOwner    = stanza.ErrConflict.WithText("a room needs an owner: name another before leaving the post")
)

// checkRoleChange applies XEP-0045's privilege rules to a change of
// target's role to role by actor (§8.1–8.5, §9.6–9.7): a moderator may
// kick and give or take voice, only an admin or owner may touch the
// moderator role, nobody may act on a user of higher affiliation, and admins
// and owners keep the moderator role while they are in the room.
func checkRoleChange(actorAff Affiliation, actorRole Role, targetAff Affiliation, targetRole, role Role) *stanza.Error {
	if actorRole != RoleModerator {
		return errNotModerator
	}
	if targetAff > actorAff {
		return errRank
	}
	if targetAff >= AffAdmin && role != RoleModerator {
		return errAdminsStay
	}
	if (role == RoleModerator || targetRole == RoleModerator) && actorAff < AffAdmin {
		return errModRank
	}
	return nil
}

// checkAffiliationChange applies the rules of XEP-0045 §9 and §10 to a
// change of a user's affiliation from old to aff by actor: owners may do
// anything but leave the room without an owner; admins may ban, make
// members and remove members of users who are neither admins nor owners;
// nobody else may change affiliations. lastOwner says whether the target
// is the room's only owner.
func checkAffiliationChange(actorAff, old, aff Affiliation, lastOwner bool) *stanza.Error {
	switch {
	case actorAff == AffOwner:
		if old == AffOwner && aff != AffOwner && lastOwner {
			return errLastOwner
		}
		return nil
	case actorAff != AffAdmin:
		return errNotAdmin
	case old >= AffAdmin || aff >= AffAdmin:
		return errAffRank
	}
	return nil
}

// canReadAffiliations says who may read the list of users with
// affiliation list (XEP-0045 §9.5, §9.8, §10.5, §10.8; Prosody lets admins
// read the admin list too): admins and owners, any affiliation up to their
// own. A members-only room's members may read its member list when the
// room is non-anonymous, as Prosody allows.
func canReadAffiliations(actorAff, list Affiliation, membersOnly, nonAnonymous bool) bool {
	if actorAff >= AffAdmin {
		return actorAff >= list
	}
	return list == AffMember && actorAff == AffMember && membersOnly && nonAnonymous
}
