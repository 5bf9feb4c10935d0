package server

import (
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/retraction"
)

// accountArchives gives the tombstoner of retracted messages each host's
// archive, looked up at each retraction as hostArchive does for rooms.
func accountArchives(mods *modules.Server) func(domain string) retraction.Archive {
	return func(domain string) retraction.Archive {
		if a := archiveOf(mods, domain); a != nil {
			return archiveView{a}
		}
		return nil
	}
}

// archiveOf is host's archive, nil while it has none.
func archiveOf(mods *modules.Server, host string) *modules.Archive {
	h := mods.Host(host)
	if h == nil || !h.Archive.On || h.Archive.Backend == nil || h.Archive.Backend.Writer == nil {
		return nil
	}
	return h.Archive.Backend
}
