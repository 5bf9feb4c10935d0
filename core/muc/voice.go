package muc

import (
	"context"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Voice requests (XEP-0045 §7.13, §8.6): a visitor asks for voice with a
// muc#request form; the room hands the form to its moderators, and one who
// submits it back with muc#request_allow set gives the visitor voice.

var errVoiceRequest = stanza.ErrBadRequest.WithText("want a muc#request form asking for the participant role")

func (r *room) voiceRequest(ctx context.Context, el, f *xmlstream.Element, from jid.JID, cur *occupant) {
	if cur == nil {
		r.reply(el, errNotJoined)
		return
	}
	vals := dataform.Values(f)
	if allow, ok := vals["muc#request_allow"]; ok && f.Attr("type") == "submit" {
		r.voiceDecision(el, vals, allow, from, cur)
		return
	}
	if role, _ := single(vals["muc#role"]); role != "participant" {
		r.reply(el, errVoiceRequest)
		return
	}
	if cur.role != RoleVisitor {
		return // it has voice already: nothing to ask
	}
	form := dataform.Build("form", "", "Voice request", "To approve this request for voice, select the \"Grant voice\" checkbox and submit this form.", []dataform.Field{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{NSRequest}},
		{Var: "muc#role", Type: "list-single", Label: "Requested role", Values: []string{"participant"},
			Options: []dataform.Option{{Label: "Participant", Value: "participant"}}},
		{Var: "muc#jid", Type: "jid-single", Label: "User ID", Values: []string{from.String()}},
		{Var: "muc#roomnick", Type: "text-single", Label: "Room Nickname", Values: []string{cur.nick}},
		{Var: "muc#request_allow", Type: "boolean", Label: "Grant voice to this person?", Values: []string{"0"}},
	})
	m := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("from", r.jid.String()).SetAttr("id", newStanzaID())
	m.AppendChild(form)
	for _, o := range r.sortedOccupants() {
		if o.role == RoleModerator {
			r.toOccupant(o, m)
		}
	}
}

// voiceDecision applies a moderator's answer to a voice request.
func (r *room) voiceDecision(el *xmlstream.Element, vals map[string][]string, allow []string, from jid.JID, cur *occupant) {
	ok, valid := boolValue(allow)
	if !valid {
		r.reply(el, errVoiceRequest)
		return
	}
	if !ok {
		return
	}
	nick, _ := single(vals["muc#roomnick"])
	target := r.occupants[nick]
	if target == nil {
		r.reply(el, errNoSuchNick)
		return
	}
	if e := checkRoleChange(r.affiliation(from), cur.role, r.affiliation(target.bare), target.role, RoleParticipant); e != nil {
		r.reply(el, e)
		return
	}
	if target.role == RoleVisitor {
		r.applyRole(target, RoleParticipant, cur.nick, "")
	}
}
