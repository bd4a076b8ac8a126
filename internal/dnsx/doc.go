// Package dnsx is mailgate's only way to ask DNS questions.
//
// Mail authentication (SPF, DKIM, DMARC), MX routing and DNS blocklists all
// turn DNS answers into decisions to accept, reject or deliver mail, so
// mailgate never uses the system resolver (net.DefaultResolver, the cgo
// getaddrinfo path, /etc/resolv.conf or /etc/hosts):
//
//   - The operator must name the recursive resolver explicitly. resolv.conf
//     often points at a forwarder the mail system does not control (a
//     container runtime stub, a public resolver that DNS blocklists refuse to
//     answer), and search domains, ndots and /etc/hosts can silently rewrite
//     the names that are looked up.
//   - Decisions depend on telling "the name does not exist" from "the
//     resolver is in trouble": the first may reject mail, the second must only
//     defer it. The cgo path loses that distinction; this package reports it
//     the way *net.Resolver's pure-Go code does, through *net.DNSError.
//   - Tests stay hermetic: every component takes a [Resolver], and tests point
//     it at the in-process server in package dnstest.
//
// [New] returns a resolver that talks to one configured "host:port" only;
// [Unconfigured] returns one that fails every query with a temporary error, so
// a missing setting defers mail instead of leaking queries to the system
// resolver.
package dnsx
