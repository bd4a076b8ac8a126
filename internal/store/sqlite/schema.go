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
	// 11: mail continuity: each domain's delivery mode (a row once it was
	// switched), the continuity event log, hand-back jobs with the state of
	// every message they hand back, and the sealed credentials of the
	// hand-back paths.
	`
CREATE TABLE domain_modes (
	domain_id INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	mode TEXT NOT NULL,
	changed_us INTEGER NOT NULL,
	changed_by TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX domain_modes_tenant ON domain_modes(tenant_id);
CREATE TABLE continuity_events (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	domain TEXT NOT NULL,
	at_us INTEGER NOT NULL,
	kind TEXT NOT NULL,
	actor TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX continuity_events_domain ON continuity_events(tenant_id, domain, id);
CREATE INDEX continuity_events_at ON continuity_events(at_us);
CREATE TABLE handback_jobs (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	domain TEXT NOT NULL,
	user_addr TEXT NOT NULL DEFAULT '',
	path TEXT NOT NULL,
	state TEXT NOT NULL,
	cursor INTEGER NOT NULL DEFAULT 0,
	scanned INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	finished_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX handback_jobs_tenant ON handback_jobs(tenant_id, id);
CREATE INDEX handback_jobs_running ON handback_jobs(state) WHERE state = 'running';
CREATE TABLE handback_items (
	tenant_id INTEGER NOT NULL,
	item_id INTEGER NOT NULL,
	job_id INTEGER NOT NULL REFERENCES handback_jobs(id) ON DELETE CASCADE,
	domain TEXT NOT NULL,
	user_addr TEXT NOT NULL,
	sent INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_us INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	how TEXT NOT NULL DEFAULT '',
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until_us INTEGER NOT NULL DEFAULT 0,
	updated_us INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, item_id)
);
CREATE INDEX handback_items_job ON handback_items(job_id, state, item_id);
CREATE INDEX handback_items_due ON handback_items(next_us) WHERE state = 'pending';
CREATE INDEX handback_items_lease ON handback_items(lease_owner) WHERE lease_owner <> '';
CREATE TABLE continuity_secrets (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	provider TEXT NOT NULL,
	sealed BLOB NOT NULL,
	updated_us INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, provider)
);
`,
	// 12: emergency mailboxes (internal/mailbox, served over IMAP). A
	// folder's UIDs and mod-sequences are assigned from its row; expunged
	// UIDs are kept with their mod-sequence so sessions on any node learn
	// of them; the decoded texts and raw header are kept once per blob
	// (copies share it). IDs are never reused (AUTOINCREMENT): a session
	// holding a deleted folder's ID must not see a new folder, and the
	// hand-back pages by message ID.
	`
CREATE TABLE mailboxes (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	address TEXT NOT NULL,
	domain TEXT NOT NULL,
	quota_mb INTEGER NOT NULL DEFAULT 0,
	used_bytes INTEGER NOT NULL DEFAULT 0,
	messages INTEGER NOT NULL DEFAULT 0,
	next_uidvalidity INTEGER NOT NULL,
	last_login_us INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL,
	UNIQUE (tenant_id, address)
);
CREATE INDEX mailboxes_domain ON mailboxes(tenant_id, domain);
CREATE TABLE mailbox_folders (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	special_use TEXT NOT NULL DEFAULT '',
	uid_validity INTEGER NOT NULL,
	uid_next INTEGER NOT NULL DEFAULT 1,
	highest_modseq INTEGER NOT NULL DEFAULT 1,
	created_us INTEGER NOT NULL,
	UNIQUE (mailbox_id, name)
);
CREATE TABLE mailbox_subscriptions (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	PRIMARY KEY (mailbox_id, name)
) WITHOUT ROWID;
CREATE TABLE mailbox_messages (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	folder_id INTEGER REFERENCES mailbox_folders(id) ON DELETE SET NULL,
	uid INTEGER,
	modseq INTEGER NOT NULL,
	flags TEXT NOT NULL DEFAULT '',
	internal_us INTEGER NOT NULL,
	size INTEGER NOT NULL,
	blob_key TEXT NOT NULL,
	from_hdr TEXT NOT NULL DEFAULT '',
	to_hdr TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	message_id_hdr TEXT NOT NULL DEFAULT '',
	date_us INTEGER NOT NULL DEFAULT 0,
	queue_id TEXT NOT NULL DEFAULT '',
	mail_from TEXT NOT NULL DEFAULT '',
	emergency INTEGER NOT NULL DEFAULT 0,
	handed_back_us INTEGER NOT NULL DEFAULT 0,
	handback_how TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX mailbox_messages_uid ON mailbox_messages(folder_id, uid);
CREATE INDEX mailbox_messages_modseq ON mailbox_messages(folder_id, modseq);
CREATE INDEX mailbox_messages_blob ON mailbox_messages(blob_key);
CREATE INDEX mailbox_messages_mailbox ON mailbox_messages(mailbox_id);
CREATE UNIQUE INDEX mailbox_messages_queue ON mailbox_messages(mailbox_id, queue_id) WHERE queue_id <> '';
CREATE INDEX mailbox_messages_handback ON mailbox_messages(tenant_id, id) WHERE emergency = 1 AND handed_back_us = 0;
CREATE TABLE mailbox_expunged (
	folder_id INTEGER NOT NULL REFERENCES mailbox_folders(id) ON DELETE CASCADE,
	uid INTEGER NOT NULL,
	modseq INTEGER NOT NULL,
	PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
CREATE INDEX mailbox_expunged_modseq ON mailbox_expunged(folder_id, modseq);
CREATE TABLE mailbox_texts (
	blob_key TEXT PRIMARY KEY,
	header BLOB,
	search_header TEXT NOT NULL DEFAULT '',
	search_body TEXT NOT NULL DEFAULT ''
);
`,
	// 13: the users' sent mail of an emergency (stored in a \Sent folder
	// while their domain was in emergency mode), handed back to the
	// primary service's Sent folders with the mail received.
	`
ALTER TABLE mailbox_messages ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;
`,
	// 14: a mail app password per account (IMAP and submission for
	// accounts with a second factor).
	`
ALTER TABLE accounts ADD COLUMN app_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN app_created_us INTEGER NOT NULL DEFAULT 0;
`,
	// 15: the webmail's message list: whether a message has attachments,
	// its conversation (thread_id: see store.MailMessage.ThreadID; a
	// message added before is a conversation of its own), indexes for the list's orders, for unread
	// counts and for conversations, and the normalised From, To and Subject
	// that field searches look in.
	`
ALTER TABLE mailbox_messages ADD COLUMN has_attach INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailbox_messages ADD COLUMN thread_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailbox_texts ADD COLUMN search_from TEXT NOT NULL DEFAULT '';
ALTER TABLE mailbox_texts ADD COLUMN search_to TEXT NOT NULL DEFAULT '';
ALTER TABLE mailbox_texts ADD COLUMN search_subject TEXT NOT NULL DEFAULT '';
UPDATE mailbox_messages SET thread_id = id;
CREATE INDEX mailbox_messages_date ON mailbox_messages(folder_id, internal_us, id);
CREATE INDEX mailbox_messages_size ON mailbox_messages(folder_id, size, id);
CREATE INDEX mailbox_messages_from ON mailbox_messages(folder_id, from_hdr, id);
CREATE INDEX mailbox_messages_subject ON mailbox_messages(folder_id, subject, id);
CREATE INDEX mailbox_messages_all ON mailbox_messages(mailbox_id, internal_us, id) WHERE folder_id IS NOT NULL;
CREATE INDEX mailbox_messages_thread ON mailbox_messages(folder_id, thread_id, internal_us, id);
CREATE INDEX mailbox_messages_conv ON mailbox_messages(mailbox_id, thread_id);
CREATE INDEX mailbox_messages_msgid ON mailbox_messages(mailbox_id, message_id_hdr) WHERE message_id_hdr <> '';
CREATE INDEX mailbox_messages_unseen ON mailbox_messages(mailbox_id, folder_id) WHERE instr(flags, '\Seen') = 0;
`,
	// 16: mailing lists (internal/mlist): lists, their members (with the
	// bounce state of each), their administrators and the serial numbers
	// given to posts (one row per post, so a post distributed again after
	// a crash keeps its number). List IDs are never reused.
	`
CREATE TABLE ml_lists (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	address TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	posting TEXT NOT NULL,
	subject_serial INTEGER NOT NULL DEFAULT 0,
	reply_to_list INTEGER NOT NULL DEFAULT 0,
	serial INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL
);
CREATE INDEX ml_lists_tenant ON ml_lists(tenant_id);
CREATE TABLE ml_members (
	list_id INTEGER NOT NULL REFERENCES ml_lists(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL,
	address TEXT NOT NULL,
	comment TEXT NOT NULL DEFAULT '',
	bounces INTEGER NOT NULL DEFAULT 0,
	last_bounce_us INTEGER NOT NULL DEFAULT 0,
	disabled INTEGER NOT NULL DEFAULT 0,
	created_us INTEGER NOT NULL,
	PRIMARY KEY (list_id, address)
) WITHOUT ROWID;
CREATE INDEX ml_members_address ON ml_members(tenant_id, address);
CREATE TABLE ml_admins (
	list_id INTEGER NOT NULL REFERENCES ml_lists(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL,
	address TEXT NOT NULL,
	PRIMARY KEY (list_id, address)
) WITHOUT ROWID;
CREATE INDEX ml_admins_address ON ml_admins(tenant_id, address);
CREATE TABLE ml_posts (
	list_id INTEGER NOT NULL REFERENCES ml_lists(id) ON DELETE CASCADE,
	post TEXT NOT NULL,
	serial INTEGER NOT NULL,
	created_us INTEGER NOT NULL,
	PRIMARY KEY (list_id, post)
) WITHOUT ROWID;
CREATE UNIQUE INDEX ml_posts_serial ON ml_posts(list_id, serial);
`,
	// 17: the spam classifier's linear model: a weight per token, and per
	// trained message the lesson its training added to its tokens' weights.
	`
ALTER TABLE spam_tokens ADD COLUMN weight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spam_trained ADD COLUMN lesson INTEGER NOT NULL DEFAULT 0;
`,
	// 18: audit archive: tenants' settings, messages queued for archiving by
	// Accept, the append-only log with its Merkle frontier and signed
	// checkpoints, deduplicated body segments, holds and access grants.
	`
CREATE TABLE archive_settings (
	tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
	enabled INTEGER NOT NULL DEFAULT 0,
	mode TEXT NOT NULL DEFAULT 'all',
	rule TEXT NOT NULL DEFAULT '',
	retention_days INTEGER NOT NULL DEFAULT 0,
	capacity_bytes INTEGER NOT NULL DEFAULT 0,
	on_full TEXT NOT NULL DEFAULT 'stop',
	user_search INTEGER NOT NULL DEFAULT 0,
	updated_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE archive_pending (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	message_id TEXT NOT NULL UNIQUE,
	blob_key TEXT NOT NULL,
	size INTEGER NOT NULL,
	direction TEXT NOT NULL,
	created_us INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX archive_pending_blob ON archive_pending(blob_key);
CREATE INDEX archive_pending_due ON archive_pending(lease_until_us, id);
CREATE TABLE archive_log (
	tenant_id INTEGER PRIMARY KEY,
	size INTEGER NOT NULL DEFAULT 0,
	frontier BLOB NOT NULL DEFAULT x''
);
CREATE TABLE archive_entries (
	tenant_id INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	id TEXT NOT NULL,
	kind TEXT NOT NULL,
	queue_id TEXT NOT NULL DEFAULT '',
	direction TEXT NOT NULL DEFAULT '',
	imported INTEGER NOT NULL DEFAULT 0,
	at_us INTEGER NOT NULL,
	received_us INTEGER NOT NULL,
	size INTEGER NOT NULL DEFAULT 0,
	sha256 TEXT NOT NULL DEFAULT '',
	segments TEXT NOT NULL DEFAULT '',
	meta TEXT NOT NULL DEFAULT '',
	leaf BLOB NOT NULL,
	chunks BLOB NOT NULL DEFAULT x'',
	from_hdr TEXT NOT NULL DEFAULT '',
	to_hdr TEXT NOT NULL DEFAULT '',
	cc_hdr TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	has_attachment INTEGER NOT NULL DEFAULT 0,
	verdict TEXT NOT NULL DEFAULT '',
	deleted_us INTEGER NOT NULL DEFAULT 0,
	delivery TEXT NOT NULL DEFAULT '',
	indexed INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX archive_entries_id ON archive_entries(tenant_id, id);
CREATE UNIQUE INDEX archive_entries_queue ON archive_entries(tenant_id, queue_id) WHERE queue_id <> '';
CREATE INDEX archive_entries_unindexed ON archive_entries(tenant_id, seq) WHERE indexed = 0;
CREATE INDEX archive_entries_received ON archive_entries(tenant_id, received_us) WHERE kind = 'message' AND deleted_us = 0;
CREATE TABLE archive_blobs (
	tenant_id INTEGER NOT NULL,
	sha256 TEXT NOT NULL,
	blob_key TEXT NOT NULL,
	size INTEGER NOT NULL,
	refs INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, sha256)
) WITHOUT ROWID;
CREATE TABLE archive_checkpoints (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	size INTEGER NOT NULL,
	root BLOB NOT NULL,
	at_us INTEGER NOT NULL,
	text TEXT NOT NULL,
	signature BLOB NOT NULL,
	key_id TEXT NOT NULL
);
CREATE INDEX archive_checkpoints_tenant ON archive_checkpoints(tenant_id, id);
CREATE TABLE archive_holds (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	kind TEXT NOT NULL,
	value TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	by_who TEXT NOT NULL DEFAULT '',
	created_us INTEGER NOT NULL
);
CREATE TABLE archive_access (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	principal TEXT NOT NULL,
	PRIMARY KEY (tenant_id, principal)
) WITHOUT ROWID;
`,
	// 19: attachment download links (internal/attachlink): the link's
	// description as its owner encodes it, its counters, and the download
	// log.
	`
CREATE TABLE attach_links (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	id TEXT NOT NULL,
	sender TEXT NOT NULL DEFAULT '',
	data BLOB NOT NULL,
	created_us INTEGER NOT NULL,
	expires_us INTEGER NOT NULL,
	max_downloads INTEGER NOT NULL DEFAULT 0,
	downloads INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX attach_links_expires ON attach_links(expires_us);
CREATE INDEX attach_links_sender ON attach_links(tenant_id, sender, created_us);
CREATE TABLE attach_link_downloads (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	link_id TEXT NOT NULL,
	at_us INTEGER NOT NULL,
	file TEXT NOT NULL,
	client TEXT NOT NULL,
	FOREIGN KEY (tenant_id, link_id) REFERENCES attach_links(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX attach_link_downloads_link ON attach_link_downloads(tenant_id, link_id, at_us);
`,
	// 20: outbound protection: each tenant's outbound rules (their
	// definition is package outbound's JSON) with a version that every
	// change raises, and the outbound messages held for approval or
	// delayed, one row each, decided by compare-and-set on state.
	`
CREATE TABLE outbound_rules (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	name TEXT NOT NULL,
	enabled INTEGER NOT NULL DEFAULT 1,
	scope TEXT NOT NULL,
	owner TEXT NOT NULL DEFAULT '',
	spec TEXT NOT NULL,
	updated_us INTEGER NOT NULL,
	updated_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbound_rules_tenant ON outbound_rules(tenant_id, position, id);
CREATE TABLE outbound_versions (
	tenant_id INTEGER PRIMARY KEY,
	version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE outbound_holds (
	message_id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	kind TEXT NOT NULL,
	state TEXT NOT NULL,
	sender TEXT NOT NULL,
	subject TEXT NOT NULL DEFAULT '',
	rcpts TEXT NOT NULL DEFAULT '',
	size INTEGER NOT NULL DEFAULT 0,
	rule TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT '',
	release_us INTEGER NOT NULL,
	on_timeout TEXT NOT NULL DEFAULT '',
	self_approval INTEGER NOT NULL DEFAULT 0,
	related TEXT NOT NULL DEFAULT '[]',
	created_us INTEGER NOT NULL,
	decided_us INTEGER NOT NULL DEFAULT 0,
	decided_by TEXT NOT NULL DEFAULT '',
	note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbound_holds_tenant ON outbound_holds(tenant_id, created_us);
CREATE INDEX outbound_holds_sender ON outbound_holds(tenant_id, sender, created_us);
CREATE INDEX outbound_holds_due ON outbound_holds(release_us) WHERE state = 'pending';
`,
	// The onboarding wizard's state per domain.
	`
CREATE TABLE domain_onboarding (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	domain TEXT NOT NULL,
	service TEXT NOT NULL DEFAULT '',
	done INTEGER NOT NULL DEFAULT 0,
	test_message TEXT NOT NULL DEFAULT '',
	finished_us INTEGER NOT NULL DEFAULT 0,
	updated_us INTEGER NOT NULL,
	updated_by TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, domain)
);
`,
	// The mailbox search index (mailindex.go): a stable integer key per
	// kept text and two contentless FTS5 tables without positions, the
	// trigrams of the texts and their distinct characters and character
	// pairs. Texts kept before are listed unindexed here; the indexer
	// indexes them after the store opens.
	`
CREATE TABLE mailbox_text_ids (
	id INTEGER PRIMARY KEY,
	blob_key TEXT NOT NULL UNIQUE,
	indexed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mailbox_text_ids_pending ON mailbox_text_ids(id) WHERE indexed = 0;
CREATE VIRTUAL TABLE mailbox_text_tri USING fts5(hdr, body,
	content='', contentless_delete=1, tokenize='trigram case_sensitive 1', detail='column');
CREATE VIRTUAL TABLE mailbox_text_bi USING fts5(hdr, body,
	content='', contentless_delete=1, tokenize='ascii', detail='column');
INSERT INTO mailbox_text_ids(blob_key) SELECT blob_key FROM mailbox_texts ORDER BY rowid;
`,
	// Recipient verification: each domain's recipient check (none,
	// directory, callout) with the state of its directory synchronisation,
	// and the synchronised addresses (users, aliases, groups).
	`
CREATE TABLE recipient_checks (
	domain_id INTEGER PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	mode TEXT NOT NULL DEFAULT 'none',
	source TEXT NOT NULL DEFAULT '',
	admin TEXT NOT NULL DEFAULT '',
	synced_us INTEGER NOT NULL DEFAULT 0,
	entries INTEGER NOT NULL DEFAULT 0,
	attempted_us INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	held INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recipient_checks_tenant ON recipient_checks(tenant_id);
CREATE TABLE directory_entries (
	domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	address TEXT NOT NULL,
	kind TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	name TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (domain_id, address)
);
CREATE INDEX directory_entries_address ON directory_entries(tenant_id, address);
`,
	// The policy version: bumped with every write to a tenant's settings,
	// groups, group members or trusted networks, so the inbound pipeline
	// can keep them in memory and still see a change made by another
	// process.
	`ALTER TABLE tenant_versions ADD COLUMN policy INTEGER NOT NULL DEFAULT 0;`,
	// The addressing version (AddressingVersion): bumped by the database
	// itself with every change to a domain, a relay network or a mailing
	// list's address, including the rows a deleted tenant or domain takes
	// with it, so the listeners and the queue can keep them in memory and
	// still see a change made by another process.
	`
CREATE TABLE store_versions (
	name TEXT PRIMARY KEY,
	version INTEGER NOT NULL
);
CREATE TRIGGER domains_addressing_ins AFTER INSERT ON domains BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER domains_addressing_del AFTER DELETE ON domains BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER domains_addressing_upd AFTER UPDATE OF tenant_id, name ON domains BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER relay_nets_addressing_ins AFTER INSERT ON relay_nets BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER relay_nets_addressing_del AFTER DELETE ON relay_nets BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER relay_nets_addressing_upd AFTER UPDATE OF tenant_id, prefix ON relay_nets BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER ml_lists_addressing_ins AFTER INSERT ON ml_lists BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER ml_lists_addressing_del AFTER DELETE ON ml_lists BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER ml_lists_addressing_upd AFTER UPDATE OF tenant_id, address ON ml_lists BEGIN
	INSERT INTO store_versions(name, version) VALUES ('addressing', 1)
		ON CONFLICT(name) DO UPDATE SET version = version + 1;
END;
`,
	// The tracking search's documents are added by the tracking indexer
	// (track.go) up to this watermark; every message listed so far is
	// indexed already.
	`
CREATE TABLE track_indexed (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO track_indexed(id, seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM track_ids));
`,
}
