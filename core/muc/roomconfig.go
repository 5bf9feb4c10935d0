package muc

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
)

// RoomConfig is a room's configuration (XEP-0045 §10.2, the
// muc#roomconfig form).
type RoomConfig struct {
	Name        string
	Description string
	Language    string
	Persistent  bool
	Public      bool // listed in the service's disco#items
	MembersOnly bool
	Moderated   bool
	// Password, when not "", is asked of everyone entering but owners.
	Password string
	// WhoIs says who sees occupants' real JIDs: "moderators"
	// (semi-anonymous) or "anyone" (non-anonymous).
	WhoIs string
	// MaxUsers bounds the occupants; 0 is the service's limit.
	MaxUsers int
	// ChangeSubject lets participants, not only moderators, set the subject.
	ChangeSubject bool
	// AllowInvites lets participants invite others, not only admins and
	// owners; in a members-only room an invitation then makes the invitee
	// a member.
	AllowInvites bool
	// AllowPM is who may send private messages: "anyone",
	// "participants", "moderators" or "none".
	AllowPM string
	// HistoryLength is how many messages a newcomer gets on joining.
	HistoryLength int
	// Logging marks the room as archived (XEP-0045 status 170); clients
	// show it to users entering.
	Logging bool
}

// Values of WhoIs and AllowPM.
const (
	WhoIsModerators = "moderators"
	WhoIsAnyone     = "anyone"
)

// validPM is the set of AllowPM values, as Prosody names them.
var validPM = map[string]bool{"anyone": true, "participants": true, "moderators": true, "none": true}

// Field vars of the muc#roomconfig form.
const (
	fRoomName      = "muc#roomconfig_roomname"
	fRoomDesc      = "muc#roomconfig_roomdesc"
	fLang          = "muc#roomconfig_lang"
	fPersistent    = "muc#roomconfig_persistentroom"
	fPublic        = "muc#roomconfig_publicroom"
	fMembersOnly   = "muc#roomconfig_membersonly"
	fModerated     = "muc#roomconfig_moderatedroom"
	fPassProtected = "muc#roomconfig_passwordprotectedroom"
	fSecret        = "muc#roomconfig_roomsecret"
	fWhoIs         = "muc#roomconfig_whois"
	fMaxUsers      = "muc#roomconfig_maxusers"
	fChangeSubject = "muc#roomconfig_changesubject"
	fAllowInvites  = "muc#roomconfig_allowinvites"
	fAllowPM       = "muc#roomconfig_allowpm"
	fHistoryLength = "muc#roomconfig_historylength"
	fLogging       = "muc#roomconfig_enablelogging"
	fOwners        = "muc#roomconfig_roomowners"
	fAdmins        = "muc#roomconfig_roomadmins"
	// fSalt is no form field: it keeps a persistent room's occupant-id
	// salt (XEP-0421) with its configuration, so ids survive a restart.
	fSalt = "koi#occupant_id_salt"
)

// Bounds of free-text configuration.
const (
	maxNameLen = 256
	maxDescLen = 1024
	maxPassLen = 256
)

// fields returns the configuration form of a room with c, owners and
// admins, for a service that keeps at most maxHistory messages and
// maxUsers occupants per room.
func (c RoomConfig) fields(owners, admins []string, maxHistory, maxUsers int) []dataform.Field {
	users := []string{}
	for _, n := range []int{10, 20, 30, 50, 100, 200, 500, 1000} {
		if maxUsers == 0 || n <= maxUsers {
			users = append(users, strconv.Itoa(n))
		}
	}
	var userOpts []dataform.Option
	for _, u := range users {
		userOpts = append(userOpts, dataform.Option{Value: u})
	}
	if maxUsers == 0 {
		userOpts = append(userOpts, dataform.Option{Label: "No limit", Value: "0"})
	} else if !contains(users, strconv.Itoa(maxUsers)) {
		userOpts = append(userOpts, dataform.Option{Value: strconv.Itoa(maxUsers)})
	}
	return []dataform.Field{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{NSRoomConfig}},
		{Var: fRoomName, Type: "text-single", Label: "Title", Values: []string{c.Name}},
		{Var: fRoomDesc, Type: "text-single", Label: "Description", Values: []string{c.Description}},
		{Var: fLang, Type: "text-single", Label: "Language tag for room (e.g. 'en', 'de', 'fr' etc.)", Values: []string{c.Language}},
		{Var: fPersistent, Type: "boolean", Label: "Persistent (room is not destroyed when the last occupant leaves)", Values: []string{boolString(c.Persistent)}},
		{Var: fPublic, Type: "boolean", Label: "Include room information in public lists", Values: []string{boolString(c.Public)}},
		{Var: fMembersOnly, Type: "boolean", Label: "Only allow members to join", Values: []string{boolString(c.MembersOnly)}},
		{Var: fModerated, Type: "boolean", Label: "Moderated (only occupants with voice may speak)", Values: []string{boolString(c.Moderated)}},
		{Var: fPassProtected, Type: "boolean", Label: "Password protected", Values: []string{boolString(c.Password != "")}},
		{Var: fSecret, Type: "text-private", Label: "Password", Values: []string{c.Password}},
		{Var: fWhoIs, Type: "list-single", Label: "Addresses (JIDs) of room occupants may be viewed by", Values: []string{c.WhoIs},
			Options: []dataform.Option{{Label: "Moderators only", Value: WhoIsModerators}, {Label: "Anyone", Value: WhoIsAnyone}}},
		{Var: fMaxUsers, Type: "list-single", Label: "Maximum number of occupants", Values: []string{strconv.Itoa(c.MaxUsers)}, Options: userOpts},
		{Var: fChangeSubject, Type: "boolean", Label: "Allow anyone with voice to set the subject", Values: []string{boolString(c.ChangeSubject)}},
		{Var: fAllowInvites, Type: "boolean", Label: "Allow members to invite new members", Values: []string{boolString(c.AllowInvites)}},
		{Var: fAllowPM, Type: "list-single", Label: "Allow private messages from", Values: []string{c.AllowPM},
			Options: []dataform.Option{{Label: "Everyone", Value: "anyone"}, {Label: "Participants", Value: "participants"}, {Label: "Moderators", Value: "moderators"}, {Label: "Nobody", Value: "none"}}},
		{Var: fHistoryLength, Type: "text-single", Label: "Number of messages sent to newcomers (at most " + strconv.Itoa(maxHistory) + ")", Values: []string{strconv.Itoa(c.HistoryLength)}},
		{Var: fLogging, Type: "boolean", Label: "Archive discussions", Values: []string{boolString(c.Logging)}},
		{Var: fOwners, Type: "jid-multi", Label: "Owners", Values: owners},
		{Var: fAdmins, Type: "jid-multi", Label: "Admins", Values: admins},
	}
}

// formChange is a submitted configuration form, applied to a copy of the
// current configuration; nil lists leave the owners or admins unchanged.
type formChange struct {
	cfg            RoomConfig
	owners, admins []jid.JID
	setOwners      bool
	setAdmins      bool
}

// applyForm reads a submitted configuration form over c. Every field is
// checked before anything is applied, so a bad form changes nothing.
func applyForm(c RoomConfig, vals map[string][]string, maxHistory, maxUsers int) (formChange, *stanza.Error) {
	bad := func(v, why string) (formChange, *stanza.Error) {
		return formChange{}, stanza.ErrNotAcceptable.WithText(v + ": " + why)
	}
	if ft, ok := vals["FORM_TYPE"]; ok && (len(ft) != 1 || ft[0] != NSRoomConfig) {
		return formChange{}, stanza.ErrBadRequest.WithText("the form is not of type " + NSRoomConfig)
	}
	out := formChange{cfg: c}
	text := func(v string, dst *string, limit int) *stanza.Error {
		vs, ok := vals[v]
		if !ok {
			return nil
		}
		s, ok := single(vs)
		if !ok || !utf8.ValidString(s) || len(s) > limit {
			_, err := bad(v, "want one line of at most "+strconv.Itoa(limit)+" bytes")
			return err
		}
		*dst = s
		return nil
	}
	flag := func(v string, dst *bool) *stanza.Error {
		vs, ok := vals[v]
		if !ok {
			return nil
		}
		b, ok := boolValue(vs)
		if !ok {
			_, err := bad(v, "want a boolean, 1 or 0")
			return err
		}
		*dst = b
		return nil
	}
	var protected *bool
	if vs, ok := vals[fPassProtected]; ok {
		b, ok := boolValue(vs)
		if !ok {
			return bad(fPassProtected, "want a boolean, 1 or 0")
		}
		protected = &b
	}
	for _, e := range []*stanza.Error{
		text(fRoomName, &out.cfg.Name, maxNameLen),
		text(fRoomDesc, &out.cfg.Description, maxDescLen),
		text(fLang, &out.cfg.Language, 64),
		text(fSecret, &out.cfg.Password, maxPassLen),
		flag(fPersistent, &out.cfg.Persistent),
		flag(fPublic, &out.cfg.Public),
		flag(fMembersOnly, &out.cfg.MembersOnly),
		flag(fModerated, &out.cfg.Moderated),
		flag(fChangeSubject, &out.cfg.ChangeSubject),
		flag(fAllowInvites, &out.cfg.AllowInvites),
		flag(fLogging, &out.cfg.Logging),
	} {
		if e != nil {
			return formChange{}, e
		}
	}
	if protected != nil && !*protected {
		out.cfg.Password = ""
	}
	if protected != nil && *protected && out.cfg.Password == "" {
		return bad(fSecret, "a password-protected room needs a password")
	}
	if vs, ok := vals[fWhoIs]; ok {
		s, ok := single(vs)
		if !ok || (s != WhoIsModerators && s != WhoIsAnyone) {
			return bad(fWhoIs, `want "moderators" or "anyone"`)
		}
		out.cfg.WhoIs = s
	}
	if vs, ok := vals[fAllowPM]; ok {
		s, ok := single(vs)
		if !ok || !validPM[s] {
			return bad(fAllowPM, `want "anyone", "participants", "moderators" or "none"`)
		}
		out.cfg.AllowPM = s
	}
	if vs, ok := vals[fMaxUsers]; ok {
		// "none" is what some clients send for no limit.
		if s, _ := single(vs); s == "none" {
			vs = []string{"0"}
		}
		n, ok := intValue(vs)
		if !ok {
			return bad(fMaxUsers, "want a number of occupants")
		}
		if maxUsers > 0 && (n == 0 || n > maxUsers) {
			n = maxUsers
		}
		out.cfg.MaxUsers = n
	}
	if vs, ok := vals[fHistoryLength]; ok {
		n, ok := intValue(vs)
		if !ok {
			return bad(fHistoryLength, "want a number of messages")
		}
		out.cfg.HistoryLength = min(n, maxHistory)
	}
	jids := func(v string) ([]jid.JID, bool, *stanza.Error) {
		vs, ok := vals[v]
		if !ok {
			return nil, false, nil
		}
		var out []jid.JID
		for _, s := range vs {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			j, err := jid.Parse(s)
			if err != nil || !j.IsBare() {
				return nil, false, stanza.ErrJIDMalformed.WithText(v + ": want bare JIDs, got " + strconv.Quote(s))
			}
			out = append(out, j)
		}
		return out, true, nil
	}
	var err *stanza.Error
	if out.owners, out.setOwners, err = jids(fOwners); err != nil {
		return formChange{}, err
	}
	if out.admins, out.setAdmins, err = jids(fAdmins); err != nil {
		return formChange{}, err
	}
	if out.setOwners && len(out.owners) == 0 {
		return bad(fOwners, "a room needs at least one owner")
	}
	return out, nil
}

// toMap is the configuration as the backend stores it: the form's values
// by field var.
func (c RoomConfig) toMap(salt string) map[string][]string {
	return map[string][]string{
		fRoomName:      {c.Name},
		fRoomDesc:      {c.Description},
		fLang:          {c.Language},
		fPersistent:    {boolString(c.Persistent)},
		fPublic:        {boolString(c.Public)},
		fMembersOnly:   {boolString(c.MembersOnly)},
		fModerated:     {boolString(c.Moderated)},
		fPassProtected: {boolString(c.Password != "")},
		fSecret:        {c.Password},
		fWhoIs:         {c.WhoIs},
		fMaxUsers:      {strconv.Itoa(c.MaxUsers)},
		fChangeSubject: {boolString(c.ChangeSubject)},
		fAllowInvites:  {boolString(c.AllowInvites)},
		fAllowPM:       {c.AllowPM},
		fHistoryLength: {strconv.Itoa(c.HistoryLength)},
		fLogging:       {boolString(c.Logging)},
		fSalt:          {salt},
	}
}

// configFromMap reads a stored configuration over the defaults d; what the
// store has that no longer validates keeps its default, so a room is never
// lost to one bad value.
func configFromMap(d RoomConfig, m map[string][]string, maxHistory, maxUsers int) (RoomConfig, string) {
	salt := ""
	if s, ok := m[fSalt]; ok && len(s) == 1 {
		salt = s[0]
	}
	vals := map[string][]string{}
	for k, v := range m {
		if k != fSalt && k != fOwners && k != fAdmins && k != fAvatarHash {
			vals[k] = v
		}
	}
	ch, err := applyForm(d, vals, maxHistory, maxUsers)
	if err != nil {
		// Apply field by field so that one bad value costs only itself.
		c := d
		for k, v := range vals {
			if one, err := applyForm(c, map[string][]string{k: v}, maxHistory, maxUsers); err == nil {
				c = one.cfg
			}
		}
		return c, salt
	}
	return ch.cfg, salt
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
