package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// shmDir is where the benchmark looks for a tmpfs.
const shmDir = "/dev/shm"

// clamdScratch makes clamd's temporary directory on tmpfs, as a packaged
// clamd has it where /tmp is a tmpfs (Debian 13 and later): clamd writes
// each message's decoded parts there, and on a disk file system creating
// and deleting them costs clamd about as much as the scan. It returns ""
// when shmDir is not a tmpfs; the caller removes the directory.
func clamdScratch() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(shmDir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return "", nil
	}
	dir, err := os.MkdirTemp(shmDir, "bench-inbound-clamd-")
	if err != nil {
		return "", fmt.Errorf("clamd's temporary directory: %w", err)
	}
	return dir, nil
}
