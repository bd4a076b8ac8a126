package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// TestClaimsMigrationKeepsDomainsServed upgrades a database from before
// domain ownership: its domains stay served, and claims work.
func TestClaimsMigrationKeepsDomainsServed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := db.CreateTenant(ctx, "a")
	if _, err := db.CreateDomain(ctx, tn.ID, "old.test"); err != nil {
		t.Fatal(err)
	}
	// Back to schema 5, as a database written by an older mailgate.
	if _, err := db.w.Exec(`DROP TRIGGER domains_addressing_ins; DROP TRIGGER domains_addressing_del; DROP TRIGGER domains_addressing_upd; DROP TRIGGER relay_nets_addressing_ins; DROP TRIGGER relay_nets_addressing_del; DROP TRIGGER relay_nets_addressing_upd; DROP TRIGGER ml_lists_addressing_ins; DROP TRIGGER ml_lists_addressing_del; DROP TRIGGER ml_lists_addressing_upd; DROP TABLE store_versions; DROP TABLE attach_link_downloads; DROP TABLE attach_links; DROP TABLE domain_claims; DROP TABLE spam_trained; ALTER TABLE spam_totals DROP COLUMN version; ALTER TABLE recipients DROP COLUMN lease_token; DROP TABLE nodes; DROP TABLE throttle; DROP TABLE domain_modes; DROP TABLE continuity_events; DROP TABLE handback_items; DROP TABLE handback_jobs; DROP TABLE continuity_secrets; DROP TABLE mailbox_text_bi; DROP TABLE mailbox_text_tri; DROP TABLE mailbox_text_ids; DROP TABLE mailbox_texts; DROP TABLE mailbox_expunged; DROP TABLE mailbox_messages; DROP TABLE mailbox_subscriptions; DROP TABLE mailbox_folders; DROP TABLE mailboxes; ALTER TABLE accounts DROP COLUMN app_hash; ALTER TABLE accounts DROP COLUMN app_created_us; DROP TABLE ml_posts; DROP TABLE ml_admins; DROP TABLE ml_members; DROP TABLE ml_lists; DROP TABLE archive_settings; DROP TABLE archive_pending; DROP TABLE archive_log; DROP TABLE archive_entries; DROP TABLE archive_blobs; DROP TABLE archive_checkpoints; DROP TABLE archive_holds; DROP TABLE archive_access; ALTER TABLE spam_tokens DROP COLUMN weight; DROP TABLE outbound_rules; DROP TABLE outbound_versions; DROP TABLE outbound_holds; DROP TABLE domain_onboarding; DROP TABLE directory_entries; DROP TABLE recipient_checks; ALTER TABLE tenant_versions DROP COLUMN policy; DROP TABLE track_indexed; UPDATE schema_version SET version = 5`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if d, err := db.DomainByName(ctx, "old.test"); err != nil || d.TenantID != tn.ID {
		t.Fatalf("existing domain after the migration: %+v %v", d, err)
	}
	if _, err := db.AddDomainClaim(ctx, store.DomainClaim{TenantID: tn.ID, Name: "new.test", Token: "x"}); err != nil {
		t.Fatal(err)
	}
}
