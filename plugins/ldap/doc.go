// Package ldapbackend is koi's LDAP directory backend (binary
// bin/plugins/koi-backend-ldap): Active Directory or OpenLDAP checks the
// passwords while the rest of a host's data lives in another backend.
// Everything it serves is read-only:
//
//   - auth: search then bind (find the user with user_filter as the
//     service account, then bind as the DN found with the user's password,
//     on a connection never used for searches), or a direct bind as
//     user_dn_template. The user name is escaped for the filter (and for a
//     DN template); an empty password never reaches the directory, since an
//     LDAP bind with one is anonymous and succeeds. UserExists answers from
//     the directory, so that messages to unknown users bounce. Only members
//     of required_group may log in (nested groups included in the member
//     and ad modes); accounts disabled in Active Directory (bit 2 of
//     userAccountControl) never do, though their names stay taken. No SCRAM
//     keys: koi offers SASL PLAIN, over TLS only. ListUsers (koictl user
//     list) enumerates with a paged search of user_filter, {user} being
//     a wildcard.
//   - roster (declared only with shared_groups): the members of each
//     shared group see each other as contacts, subscribed both ways, in a
//     roster group named by group_name_attribute. koi merges it into each
//     user's own roster (host key shared_roster). Groups are read with
//     paged searches and kept for refresh_interval.
//   - vcard: a vcard-temp document built from the user's entry.
//
// The plugin's config block (defaults in brackets):
//
//	url                  "ldaps://dc1:636" or a list, tried in order (the one that answered last first)
//	start_tls            upgrade ldap:// URLs with StartTLS [false]
//	ca_file              PEM file of the CAs for the servers' certificates [system roots]
//	tls_server_name      name checked in the certificate [the URL's host]
//	insecure_skip_verify do not check certificates; lab setups only [false]
//	allow_plaintext      allow ldap:// without StartTLS; passwords in clear text [false]
//	connect_timeout      per server: TCP, TLS, StartTLS and the service bind ["2s"]
//	timeout              per LDAP operation ["3s"]
//	pool_size            connections kept for searches, and as many for user binds [4]
//	base_dn              where users are searched (required)
//	bind_dn              service account for searches; empty: anonymous
//	bind_password        its password
//	user_filter          finds one user; {user} is the escaped name (required),
//	                     e.g. "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
//	                     (AD: without objectCategory=person it matches computer accounts too)
//	user_dn_template     bind as this instead of the DN found: "uid={user},ou=people,dc=x",
//	                     "{user}@EXAMPLE.ORG" or "EXAMPLE\\{user}"
//	username_attribute   attribute holding the JID local part; the part before @ when
//	                     the value has one (mail, userPrincipalName) ["uid"]
//	required_group       DN of the group whose members may log in [none: all users found]
//	group_membership     "member" (walk member attributes, nested), "memberof" (the
//	                     memberOf attribute, direct only) or "ad" (AD's matching rule
//	                     1.2.840.113556.1.4.1941, nested) ["member"]
//	group_base_dn        where groups are searched [base_dn]
//	group_filter         what a group is ["(|(objectClass=groupOfNames)(objectClass=group))"]
//	group_member_attribute                                                       ["member"]
//	shared_groups        DNs of the groups for the shared roster [none]
//	group_name_attribute a shared group's roster group name, cn if absent ["cn"]
//	contact_name_attribute a contact's name in the roster, cn if absent ["displayName"]
//	refresh_interval     how long group contents are kept ["5m"]
//	page_size            entries per page of group searches (AD allows 1000) [500]
//	vcard                { fn given family nickname email tel title role org orgunit photo }:
//	                     each an attribute or a list tried in order; "" turns a field off
//	                     [fn: displayName, cn; given: givenName; family: sn; email: mail;
//	                      tel: telephoneNumber; title: title; org: company, o;
//	                      orgunit: department, departmentNumber; photo: thumbnailPhoto, jpegPhoto]
//
// Failures: a directory that is down, too slow, or that answers with a
// referral instead of entries gives sdk.ErrUnavailable (clients see a
// temporary failure); continuation references inside the search base are
// skipped. A search that maps two entries to one name refuses the login
// (sdk.ErrInvalid). A refused service account stops the plugin at start.
package ldapbackend
