// Package extauth is koi's ejabberd external authentication backend
// (binary bin/plugins/koi-backend-extauth): it runs an existing ejabberd
// extauth program unchanged and asks it whether a password is right and
// whether a user exists, and, if the program says it can (writable), to
// create users, change passwords and delete users.
//
// The protocol (ejabberd's "External Authentication"): each request is
// written to the program's stdin as a 2-byte big-endian length followed by
// auth:User:Server:Password, isuser:User:Server,
// setpass:User:Server:Password, tryregister:User:Server:Password or
// removeuser:User:Server; the program answers on stdout with the length 2
// and a 2-byte big-endian 1 (success) or 0 (failure). The password is the
// last field and may contain ':'; users and hosts that contain ':',
// newlines or NUL are refused (sdk.ErrInvalid) before they reach the
// program. The program's stderr goes to the plugin's log.
//
// The protocol has no request ids, so a program serves one request at a
// time; instances copies run side by side and each request goes to a free
// one. A program that does not answer within timeout, answers out of
// protocol, or whose caller gives up, is killed (with its process group),
// and the call fails with sdk.ErrUnavailable; one that dies is restarted
// when next needed, after a delay doubling from 100ms to 10s while it
// keeps dying. Ping (koi's health check) fails while every copy is
// failing.
//
// Answers map to the sdk contract as follows: a 0 for auth or isuser is
// (false, nil); a 0 for tryregister, setpass or removeuser is explained by
// asking isuser (sdk.ErrExists, sdk.ErrNotFound), and is otherwise the
// program refusing the change (sdk.ErrReadOnly). There are no SCRAM keys,
// so koi offers SASL PLAIN, over TLS only. ListUsers is
// errors.ErrUnsupported: the protocol cannot list accounts.
//
// The plugin's config block (defaults in brackets):
//
//	program    the extauth program: an absolute path, a path relative to
//	           the plugin's working directory (koi starts it in the config
//	           file's directory), or a bare name looked up in PATH
//	args       its arguments [none]
//	instances  copies of the program run side by side, 1..64 [1]
//	timeout    time a program has to answer one request ["3s"]; keep it
//	           below the plugin block's call_timeout [5s]
//	writable   the program serves setpass, tryregister and removeuser, so
//	           koi may register users and change passwords [false]
package extauth
