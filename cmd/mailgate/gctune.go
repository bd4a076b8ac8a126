package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/config"
)

// defaultGCPercent is runtime.gc_percent when the configuration leaves it 0.
const defaultGCPercent = 300

// tuneGC applies [runtime] to the garbage collector: gc_percent as GOGC
// and memory_limit as GOMEMLIMIT, each unless its environment variable is
// set (the operator's override). getenv and readFile are os.Getenv and
// os.ReadFile outside tests. It returns the values set (-1: left alone).
func tuneGC(rc config.RuntimeConfig, log *slog.Logger, getenv func(string) string, readFile func(string) ([]byte, error)) (gcPercent int, memLimit int64) {
	gcPercent, memLimit = -1, -1
	if getenv("GOGC") == "" {
		gcPercent = rc.GCPercent
		if gcPercent == 0 {
			gcPercent = defaultGCPercent
		}
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" && rc.MemoryLimit != -1 {
		memLimit = rc.MemoryLimit
		if memLimit == 0 {
			memLimit = availableMemory(readFile) / 2
		}
		if memLimit > 0 {
			debug.SetMemoryLimit(memLimit)
		} else {
			memLimit = -1
		}
	}
	log.Debug("garbage collector", "gc_percent", gcPercent, "memory_limit", memLimit)
	return gcPercent, memLimit
}

// availableMemory is the memory the process may use: its cgroup's limit
// (cgroup v2 memory.max) when there is one, else the machine's (MemTotal);
// 0 when neither can be read.
func availableMemory(readFile func(string) ([]byte, error)) int64 {
	var machine int64
	if b, err := readFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					machine = kb << 10
				}
			}
		}
	}
	if b, err := readFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (machine == 0 || n < machine) {
			return n
		}
	}
	return machine
}

// tuneGCFromEnv is tuneGC on the process's environment and files.
func tuneGCFromEnv(rc config.RuntimeConfig, log *slog.Logger) {
	tuneGC(rc, log, os.Getenv, os.ReadFile)
}
