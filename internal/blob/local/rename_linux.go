package local

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames oldName to newName, both in dir, failing with an
// error matching os.ErrExist when newName is taken. One renameat2 call with
// RENAME_NOREPLACE both checks and renames, atomically; os.Rename would
// first stat the target. File systems without the flag fall back to a check
// and a rename (safe here: names are unique per writer).
func renameNoReplace(dir *os.File, oldName, newName string) error {
	fd := int(dir.Fd())
	err := unix.Renameat2(fd, oldName, fd, newName, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return renameChecked(dir.Name(), oldName, newName)
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldName, New: newName, Err: err}
	}
	return nil
}
