package store

import "testing"

func TestIndexSettings(t *testing.T) {
	l := IndexSettings([]Setting{
		{Scope: ScopeTenant, Key: "spam.tag_at", Value: "90"},
		{Scope: ScopeGroup, Owner: "sales", Key: "spam.tag_at", Value: "80"},
		{Scope: ScopeGroup, Owner: "sales", Key: "spam.tag", Value: "[SPAM]"},
		{Scope: ScopeAddress, Owner: "a@example.test", Key: "spam.tag_at", Value: "70"},
	})
	if v := l.Of(ScopeTenant, "")["spam.tag_at"]; v != "90" {
		t.Errorf("tenant: %q", v)
	}
	if g := l.Of(ScopeGroup, "sales"); g["spam.tag_at"] != "80" || g["spam.tag"] != "[SPAM]" || len(g) != 2 {
		t.Errorf("group: %v", g)
	}
	if v := l.Of(ScopeAddress, "a@example.test")["spam.tag_at"]; v != "70" {
		t.Errorf("address: %q", v)
	}
	// A scope's owner is not confused with another scope's.
	if l.Of(ScopeDomain, "sales") != nil || l.Of(ScopeGroup, "") != nil {
		t.Error("layers found where nothing was set")
	}
}
