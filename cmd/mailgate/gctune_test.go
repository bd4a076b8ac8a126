package main

import (
	"errors"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
)

// The collector gets runtime.gc_percent (300 by default) and a memory
// limit of half the memory the process may use, unless GOGC or
// GOMEMLIMIT say otherwise.
func TestTuneGC(t *testing.T) {
	oldPct := debug.SetGCPercent(100)
	oldLim := debug.SetMemoryLimit(math.MaxInt64)
	defer func() {
		debug.SetGCPercent(oldPct)
		debug.SetMemoryLimit(oldLim)
	}()
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	noEnv := func(string) string { return "" }
	machine := files(map[string]string{"/proc/meminfo": "MemTotal:        8000000 kB\nMemFree:  100 kB\n", "/sys/fs/cgroup/memory.max": "max\n"})
	log := slog.New(slog.DiscardHandler)
	current := func() (int, int64) {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}

	if p, l := tuneGC(config.Default().Runtime, log, noEnv, machine); p != 300 || l != 8000000<<10/2 {
		t.Fatalf("defaults: gc %d, limit %d; want 300 and half of MemTotal", p, l)
	}
	if p, l := current(); p != 300 || l != 8000000<<10/2 {
		t.Fatalf("runtime has gc %d, limit %d after the defaults", p, l)
	}
	// A cgroup limit below the machine's memory is what the process has.
	cg := files(map[string]string{"/proc/meminfo": "MemTotal: 8000000 kB\n", "/sys/fs/cgroup/memory.max": "2147483648\n"})
	if _, l := tuneGC(config.RuntimeConfig{GCPercent: 200}, log, noEnv, cg); l != 1<<30 {
		t.Fatalf("cgroup of 2 GiB: limit %d, want 1 GiB", l)
	}
	if p, l := current(); p != 200 || l != 1<<30 {
		t.Fatalf("runtime has gc %d, limit %d; want 200 and 1 GiB", p, l)
	}
	// An explicit limit, and the environment's override.
	debug.SetMemoryLimit(math.MaxInt64)
	env := func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}
	if p, l := tuneGC(config.RuntimeConfig{GCPercent: 400, MemoryLimit: 3 << 30}, log, env, machine); p != -1 || l != 3<<30 {
		t.Fatalf("GOGC set: gc %d, limit %d; want gc left alone and the configured limit", p, l)
	}
	if p, l := current(); p != 200 || l != 3<<30 {
		t.Fatalf("runtime has gc %d, limit %d; want 200 (unchanged) and 3 GiB", p, l)
	}
	// -1: no limit.
	debug.SetMemoryLimit(math.MaxInt64)
	if _, l := tuneGC(config.RuntimeConfig{MemoryLimit: -1}, log, noEnv, machine); l != -1 {
		t.Fatalf("memory_limit -1: limit %d set", l)
	}
	if _, l := current(); l != math.MaxInt64 {
		t.Fatalf("memory_limit -1: runtime limit %d", l)
	}
}

func TestRuntimeConfigValidated(t *testing.T) {
	for _, rc := range []config.RuntimeConfig{{GCPercent: 5}, {GCPercent: 300, MemoryLimit: -2}} {
		c := config.Default()
		c.Runtime = rc
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", rc)
		}
	}
}
