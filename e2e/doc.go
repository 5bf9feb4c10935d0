// Package e2e holds koi's end-to-end tests. They build the real binaries
// (koi, koictl and the SQL backend plugin), start koi as a subprocess on
// free local ports and talk XMPP to it over TCP: with the independent
// mellium.im/xmpp client library for well-behaved clients, and with a raw
// socket client for protocol violations.
//
// The package has no code outside its tests; run it with
//
//	go test ./e2e
package e2e
