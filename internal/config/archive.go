package config

import (
	"fmt"
	"time"
)

// ArchiveConfig is the audit archive's node settings; which tenants archive
// what, retention and capacity are tenant settings in the store
// (docs/archive.md).
type ArchiveConfig struct {
	Index    string   `toml:"index" doc:"Search index of the archive: bleve (embedded, in data_dir/archive-index, one node) or postgres (in the store's database, shared by the nodes). Empty: postgres when the store is, else bleve."`
	Workers  int      `toml:"workers" doc:"Messages archived in parallel by this node."`
	Interval Duration `toml:"interval" doc:"How often this node looks for messages waiting to be archived."`
	Retain   Duration `toml:"retain_every" doc:"How often retention and capacity rules are applied (deletions are logged in the archive)."`
}

// DefaultArchive is the [archive] section's default.
func DefaultArchive() ArchiveConfig {
	return ArchiveConfig{Workers: 2, Interval: D(5 * time.Second), Retain: D(time.Hour)}
}

func (c *ArchiveConfig) validate(storeDriver string) error {
	switch c.Index {
	case "":
		c.Index = "bleve"
		if storeDriver == "postgres" {
			c.Index = "postgres"
		}
	case "bleve":
	case "postgres":
		if storeDriver != "postgres" {
			return fmt.Errorf("archive.index postgres needs store.driver postgres")
		}
	default:
		return fmt.Errorf("archive.index %q: use bleve or postgres", c.Index)
	}
	d := DefaultArchive()
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.Interval.Duration <= 0 {
		c.Interval = d.Interval
	}
	if c.Retain.Duration <= 0 {
		c.Retain = d.Retain
	}
	return nil
}
