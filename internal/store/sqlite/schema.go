package sqlite

// migrations are applied in order, each once; their index+1 is the schema
// version. Never edit a released migration: append a new one.
//
// Times are INTEGER microseconds since the Unix epoch (BIGINT in the
// PostgreSQL twin), so both databases compare them the same way.
var migrations = []string{
	`
CREATE TABLE tenants (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	created_us INTEGER NOT NULL
);
CREATE TABLE domains (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name TEXT NOT NULL UNIQUE,
	created_us INTEGER NOT NULL
);
CREATE INDEX domains_tenant ON domains(tenant_id);
CREATE TABLE routes (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	priority INTEGER NOT NULL,
	target TEXT NOT NULL,
	tls TEXT NOT NULL
);
CREATE INDEX routes_domain ON routes(tenant_id, domain_id);
CREATE TABLE users (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	address TEXT NOT NULL UNIQUE,
	created_us INTEGER NOT NULL
);
CREATE INDEX users_tenant ON users(tenant_id);
CREATE TABLE relay_nets (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	prefix TEXT NOT NULL,
	UNIQUE(tenant_id, prefix)
);
CREATE TABLE relay_logins (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	username TEXT NOT NULL UNIQUE,
	hash TEXT NOT NULL
);
CREATE TABLE messages (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	direction TEXT NOT NULL,
	mail_from TEXT NOT NULL,
	envid TEXT NOT NULL DEFAULT '',
	ret_full INTEGER NOT NULL DEFAULT 0,
	size INTEGER NOT NULL,
	blob_key TEXT NOT NULL,
	received_us INTEGER NOT NULL,
	client_ip TEXT NOT NULL DEFAULT '',
	helo TEXT NOT NULL DEFAULT '',
	tls INTEGER NOT NULL DEFAULT 0,
	auth_user TEXT NOT NULL DEFAULT '',
	message_id_hdr TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	done INTEGER NOT NULL DEFAULT 0,
	corrupt TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_tenant_time ON messages(tenant_id, received_us);
CREATE INDEX messages_pending ON messages(done) WHERE done = 0;
CREATE TABLE recipients (
	id INTEGER PRIMARY KEY,
	message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL,
	addr TEXT NOT NULL,
	orcpt TEXT NOT NULL DEFAULT '',
	notify TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_us INTEGER NOT NULL,
	last_code INTEGER NOT NULL DEFAULT 0,
	last_reply TEXT NOT NULL DEFAULT '',
	remote_mta TEXT NOT NULL DEFAULT '',
	delay_notified INTEGER NOT NULL DEFAULT 0,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until_us INTEGER NOT NULL DEFAULT 0,
	updated_us INTEGER NOT NULL
);
CREATE INDEX recipients_message ON recipients(message_id);
CREATE INDEX recipients_due ON recipients(next_us) WHERE state = 'queued';
CREATE INDEX recipients_lease ON recipients(lease_owner) WHERE lease_owner <> '';
CREATE TABLE events (
	id INTEGER PRIMARY KEY,
	message_id TEXT NOT NULL,
	tenant_id INTEGER NOT NULL,
	at_us INTEGER NOT NULL,
	kind TEXT NOT NULL,
	rcpt TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT '',
	remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_message ON events(tenant_id, message_id);
`,
	`
CREATE TABLE settings (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	scope TEXT NOT NULL,
	owner TEXT NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (tenant_id, scope, owner, key)
);
CREATE TABLE groups (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	UNIQUE (tenant_id, name)
);
CREATE TABLE group_members (
	group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL,
	address TEXT NOT NULL,
	PRIMARY KEY (group_id, address)
);
CREATE INDEX group_members_addr ON group_members(tenant_id, address);
CREATE TABLE list_entries (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	scope TEXT NOT NULL,
	owner TEXT NOT NULL,
	kind TEXT NOT NULL,
	field TEXT NOT NULL,
	mode TEXT NOT NULL,
	value TEXT NOT NULL,
	action TEXT NOT NULL DEFAULT '',
	comment TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL
);
CREATE INDEX list_entries_tenant ON list_entries(tenant_id);
CREATE TABLE tenant_versions (
	tenant_id INTEGER PRIMARY KEY,
	lists INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE quarantine (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	rcpt TEXT NOT NULL,
	message_id TEXT NOT NULL,
	blob_key TEXT NOT NULL,
	mail_from TEXT NOT NULL,
	from_hdr TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	size INTEGER NOT NULL,
	score REAL NOT NULL DEFAULT 0,
	reasons TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL,
	expires_us INTEGER NOT NULL,
	state TEXT NOT NULL,
	updated_us INTEGER NOT NULL
);
CREATE INDEX quarantine_rcpt ON quarantine(tenant_id, rcpt, created_us);
CREATE TABLE trusted_nets (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	prefix TEXT NOT NULL,
	name TEXT NOT NULL,
	UNIQUE (tenant_id, prefix)
);
CREATE TABLE sender_history (
	tenant_id INTEGER NOT NULL,
	sender TEXT NOT NULL,
	first_us INTEGER NOT NULL,
	last_us INTEGER NOT NULL,
	count INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, sender)
);
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN body8bit INTEGER NOT NULL DEFAULT 0;
`,
	`
CREATE TABLE spam_tokens (
	tenant_id INTEGER NOT NULL,
	token TEXT NOT NULL,
	spam INTEGER NOT NULL DEFAULT 0,
	ham INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, token)
) WITHOUT ROWID;
CREATE TABLE spam_totals (
	tenant_id INTEGER PRIMARY KEY,
	spam INTEGER NOT NULL DEFAULT 0,
	ham INTEGER NOT NULL DEFAULT 0
);
`,
	// 4: console accounts, sessions, API tokens, audit log, marks and
	// secrets; the tracking search index (trigram FTS over sender,
	// recipients, subject and IDs, findings per message); per-recipient daily
	// report counters.
	`
CREATE TABLE accounts (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	login TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL,
	hash TEXT NOT NULL DEFAULT '',
	totp_secret TEXT NOT NULL DEFAULT '',
	lang TEXT NOT NULL DEFAULT '',
	disabled INTEGER NOT NULL DEFAULT 0,
	password_changed_us INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL
);
CREATE INDEX accounts_tenant ON accounts(tenant_id);
CREATE TABLE web_sessions (
	id TEXT PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL,
	csrf TEXT NOT NULL,
	mfa_done INTEGER NOT NULL DEFAULT 0,
	remote_ip TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL,
	last_seen_us INTEGER NOT NULL,
	expires_us INTEGER NOT NULL
);
CREATE INDEX web_sessions_account ON web_sessions(account_id);
CREATE INDEX web_sessions_expires ON web_sessions(expires_us);
CREATE TABLE api_tokens (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	scope TEXT NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL,
	expires_us INTEGER NOT NULL DEFAULT 0,
	last_used_us INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_tenant ON api_tokens(tenant_id);
CREATE TABLE audit_log (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	at_us INTEGER NOT NULL,
	actor TEXT NOT NULL,
	ip TEXT NOT NULL DEFAULT '',
	action TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	before TEXT NOT NULL DEFAULT '',
	after TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE marks (
	tenant_id INTEGER NOT NULL,
	key TEXT NOT NULL,
	at_us INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	value BLOB NOT NULL,
	created_us INTEGER NOT NULL
);
CREATE INDEX quarantine_expires ON quarantine(expires_us) WHERE state = 'held';
CREATE INDEX quarantine_created ON quarantine(created_us) WHERE state = 'held';

DROP INDEX messages_tenant_time;
CREATE INDEX messages_tenant_time ON messages(tenant_id, received_us, id);
CREATE INDEX messages_time ON messages(received_us, id);
CREATE INDEX recipients_tenant_state ON recipients(tenant_id, state, message_id);
CREATE INDEX events_quarantine ON events(tenant_id, at_us)
	WHERE kind IN ('quarantined', 'released', 'quarantine-deleted', 'quarantine-expired');
CREATE TABLE track_ids (
	seq INTEGER PRIMARY KEY,
	message_id TEXT NOT NULL
);
CREATE VIRTUAL TABLE track_fts USING fts5(sender, rcpt, subject, mid,
	content='', contentless_delete=1, tokenize='trigram');
CREATE TABLE track_findings (
	message_id TEXT NOT NULL,
	finding TEXT NOT NULL,
	tenant_id INTEGER NOT NULL,
	PRIMARY KEY (message_id, finding)
) WITHOUT ROWID;
CREATE INDEX track_findings_tenant ON track_findings(tenant_id, finding);
INSERT INTO track_ids(message_id) SELECT id FROM messages ORDER BY received_us, id;
INSERT INTO track_fts(rowid, sender, rcpt, subject, mid)
	SELECT t.seq, m.mail_from,
		coalesce((SELECT group_concat(r.addr, char(10)) FROM recipients r WHERE r.message_id = m.id), ''),
		m.subject, m.id || char(10) || m.message_id_hdr
	FROM track_ids t JOIN messages m ON m.id = t.message_id;

CREATE TABLE report_counts (
	tenant_id INTEGER NOT NULL,
	day TEXT NOT NULL,
	domain TEXT NOT NULL,
	address TEXT NOT NULL,
	metric TEXT NOT NULL,
	n INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, day, domain, address, metric)
) WITHOUT ROWID;
CREATE INDEX report_counts_day ON report_counts(day);
CREATE TABLE report_horizon (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	before_day TEXT NOT NULL
);
`,
	// 5: the quarantine page's sorts per tenant and state, and a trigram
	// index over sender and subject (the quarantine ID kept beside them,
	// since the table's rowid is not stable).
	`
CREATE INDEX quarantine_ts_created ON quarantine(tenant_id, state, created_us);
CREATE INDEX quarantine_ts_score ON quarantine(tenant_id, state, score);
CREATE INDEX quarantine_ts_sender ON quarantine(tenant_id, state, mail_from);
CREATE INDEX quarantine_ts_subject ON quarantine(tenant_id, state, subject);
CREATE INDEX quarantine_ts_size ON quarantine(tenant_id, state, size);
CREATE INDEX quarantine_ts_rcpt ON quarantine(tenant_id, state, rcpt, created_us);
CREATE VIRTUAL TABLE quarantine_fts USING fts5(qid UNINDEXED, sender, subject, tokenize='trigram');
INSERT INTO quarantine_fts(qid, sender, subject) SELECT id, mail_from || char(10) || from_hdr, subject FROM quarantine;
CREATE TRIGGER quarantine_fts_insert AFTER INSERT ON quarantine BEGIN
	INSERT INTO quarantine_fts(qid, sender, subject) VALUES (new.id, new.mail_from || char(10) || new.from_hdr, new.subject);
END;
`,
	// 6: domain ownership. A tenant administrator's new domain is a claim
	// until its TXT token is found in DNS; several tenants may claim one
	// name. Domains already in the domains table stay served (verified).
	`
CREATE TABLE domain_claims (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	token TEXT NOT NULL,
	routes TEXT NOT NULL DEFAULT '[]',
	created_us INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
);
`,
	// 7: spam models: a version every change raises (caches compare it) and
	// the fingerprints of trained messages, so training twice counts once.
	`
ALTER TABLE spam_totals ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE spam_trained (
	tenant_id INTEGER NOT NULL,
	fingerprint TEXT NOT NULL,
	label TEXT NOT NULL,
	trained_us INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, fingerprint)
) WITHOUT ROWID;
`,
	// 8: fencing tokens of queue leases: each claim of a recipient takes
	// the next token, and a write with an older one is refused.
	`
ALTER TABLE recipients ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
`,
	// 9: the nodes sharing the store and their heartbeats.
	`
CREATE TABLE nodes (
	id TEXT PRIMARY KEY,
	hostname TEXT NOT NULL,
	version TEXT NOT NULL,
	started_us INTEGER NOT NULL,
	seen_us INTEGER NOT NULL,
	addrs TEXT NOT NULL DEFAULT ''
);
`,
	// 10: token buckets shared by the nodes (login throttling, API rate
	// limits): each key's bucket is the time it is full again.
	`
CREATE TABLE throttle (
	key TEXT PRIMARY KEY,
	full_us INTEGER NOT NULL
);
`,
	// 11: the spam classifier's linear model: a weight per token, and per
	// trained message the lesson its training added to its tokens' weights.
	`
ALTER TABLE spam_tokens ADD COLUMN weight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spam_trained ADD COLUMN lesson INTEGER NOT NULL DEFAULT 0;
`,
}
