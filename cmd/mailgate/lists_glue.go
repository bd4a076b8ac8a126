package main

import (
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/store"
)

// validateListEntry applies the list check's own rules before storing.
func validateListEntry(e store.ListEntry) error {
	return lists.Validate(lists.Entry(e))
}
