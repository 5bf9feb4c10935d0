// Package httpbackend is koi's REST backend: a plugin that serves
// authentication, rosters and the message archive by calling a web service
// the operator already runs, so that a product team keeps its users where
// they are.
//
// Authentication speaks the contract shared by Prosody's mod_auth_http and
// the ejabberd_auth_http module of MongooseIM (and Erlang Solutions'
// ejabberd fork): GET {base}/check_password and {base}/user_exists with
// query parameters user, server and pass answered with "true" or "false";
// POST form-encoded {base}/register, {base}/set_password and
// {base}/remove_user answered with a status code. An existing service
// written for either works unchanged. Rosters and the archive use a JSON
// contract of koi's own, published as openapi.yaml next to this file.
//
// Every call goes through one http.Client (connections are reused), with
// a per-call timeout, a cap on the size of an answer, retries with
// exponential back-off and jitter for idempotent calls only, and a circuit
// breaker that fails calls at once with sdk.ErrUnavailable while the
// service is down and lets one probe through after a cool-down.
package httpbackend
