package router

import "iter"

// sessionSet holds a user's sessions by resource. Most users have one
// session, and an idle server holds thousands of them: the one is kept in
// a field, and the map (a few hundred bytes once it holds anything) is
// made only for a second resource.
type sessionSet struct {
	one  *Session            // the only session, when many is nil
	many map[string]*Session // by resource, from the second session on
}

func (ss *sessionSet) get(res string) *Session {
	if ss.many != nil {
		return ss.many[res]
	}
	if ss.one != nil && ss.one.jid.Resource() == res {
		return ss.one
	}
	return nil
}

// put binds s to its resource and returns the session it replaces, if any.
func (ss *sessionSet) put(s *Session) (old *Session) {
	res := s.jid.Resource()
	if ss.many == nil {
		if ss.one == nil || ss.one.jid.Resource() == res {
			old, ss.one = ss.one, s
			return old
		}
		ss.many = map[string]*Session{ss.one.jid.Resource(): ss.one}
		ss.one = nil
	}
	old = ss.many[res]
	ss.many[res] = s
	return old
}

func (ss *sessionSet) del(res string) {
	if ss.many != nil {
		delete(ss.many, res)
		return
	}
	if ss.one != nil && ss.one.jid.Resource() == res {
		ss.one = nil
	}
}

func (ss *sessionSet) len() int {
	switch {
	case ss.many != nil:
		return len(ss.many)
	case ss.one != nil:
		return 1
	}
	return 0
}

// all yields the sessions, in no particular order.
func (ss *sessionSet) all() iter.Seq[*Session] {
	return func(yield func(*Session) bool) {
		if ss.many == nil {
			if ss.one != nil {
				yield(ss.one)
			}
			return
		}
		for _, s := range ss.many {
			if !yield(s) {
				return
			}
		}
	}
}
