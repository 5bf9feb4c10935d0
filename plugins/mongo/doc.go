// Package mongobackend is koi's MongoDB storage backend: the message
// archive (XEP-0313), rosters, offline messages, vCards, private XML
// storage and accounts (SCRAM credentials only, never passwords), so that
// a deployment can keep everything in MongoDB.
//
// It is written for MongoDB and also runs on FerretDB 1.x, which speaks
// the MongoDB wire protocol on top of SQLite or PostgreSQL but lacks text
// indexes, TTL indexes and transactions, and whose updates are not atomic
// with their filter. So nothing here needs a transaction or a conditional
// update: an offline message is returned by the Pop whose delete-by-id
// removed it, archive writes are idempotent thanks to a unique index on
// (owner, stanza id), and the several documents of one roster are changed
// under a lock of the plugin's (see roster.go). Retention is
// a periodic delete run by the plugin, not a TTL index. Full-text search
// uses a text index where the server has one and falls back to a
// case-insensitive regular expression otherwise; the plugin finds out at
// start and logs which one it uses.
//
// Collections (in the configured database):
//
//	users         one document per account, _id made of host and user;
//	              index {host, user}
//	archive       one document per archived message; indexes owner_time
//	              {owner, sid} (unique; stanza ids are ordered like time),
//	              owner_peer_time {owner, peer, sid}, stamp {ts}
//	              (with retention_days only) and, with full-text
//	              search, body_text
//	archive_prefs one document per user with preferences
//	roster_items, roster_pending
//	              one document per item or pending request, _id made of
//	              owner and contact; index {owner}
//	roster_versions one roster version counter per user
//	offline       one document per message; index {owner, _id}
//	vcards        one document per user
//	private       one document per element, _id made of owner, namespace
//	              and name; index {owner}
//	pubsub_nodes  one document per pubsub or PEP node, _id made of service
//	              and node; index {service}
//	pubsub_items, pubsub_affiliations, pubsub_subscriptions
//	              one document per item, affiliation or subscription,
//	              filed under the node's uid (see pubsub.go); indexes
//	              {uid, published, seq}, {uid}, {jid, service}, {bare, service}
//
// Documents looked up by a key have it in _id, the one field every server
// finds through an index: FerretDB on SQLite scans a collection for any
// other filter.
package mongobackend
