package archive

import (
	"sync"

	"github.com/koi-im/koi/core/jid"

	"github.com/koi-im/koi/core/xmlstream"
)

// StanzaIDElement makes <stanza-id by='by' id='id'/> (XEP-0359) with one
// allocation: the element and its two attributes in one block, as one is
// added to every archived message.
func StanzaIDElement(by, id string) *xmlstream.Element {
	b := &struct {
		el    xmlstream.Element
		attrs [2]xmlstream.Attr
	}{attrs: [2]xmlstream.Attr{{Local: "by", Value: by}, {Local: "id", Value: id}}}
	b.el = xmlstream.Element{Space: nsSID, Local: "stanza-id", Attrs: b.attrs[:]}
	return &b.el
}

// maxKeptBuffer bounds a serialisation buffer kept for reuse.
const maxKeptBuffer = 64 << 10

// Serializer turns stanzas into the strings archived, in buffers it
// reuses, so that the only allocation is the string itself. The zero
// value is ready; it is safe for concurrent use.
type Serializer struct {
	bufs sync.Pool // *[]byte
}

// String returns el's XML.
func (s *Serializer) String(el *xmlstream.Element) string {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 2048)
		bp = &b
	}
	buf := el.AppendXML((*bp)[:0], "")
	str := string(buf)
	if cap(buf) <= maxKeptBuffer {
		*bp = buf
		s.bufs.Put(bp)
	}
	return str
}

// StripStanzaIDs removes from el the <stanza-id/> elements whose by is not
// a JID or is one forged reports as forged, given the message's sender
// (XEP-0359 §4: an entity trusts only the ids it or its server added). It
// costs one scan when el carries none, as most messages do.
func StripStanzaIDs(el *xmlstream.Element, forged func(by, sender jid.JID) bool) {
	found := false
	for _, c := range el.Children {
		if c.Elem != nil && c.Elem.Local == "stanza-id" && c.Elem.Space == nsSID {
			found = true
			break
		}
	}
	if !found {
		return
	}
	sender, _ := jid.Parse(el.Attr("from"))
	kept := el.Children[:0]
	for _, c := range el.Children {
		if c.Elem != nil && c.Elem.Local == "stanza-id" && c.Elem.Space == nsSID {
			by, err := jid.Parse(c.Elem.Attr("by"))
			if err != nil || forged(by, sender) {
				continue
			}
		}
		kept = append(kept, c)
	}
	el.Children = kept
}
