//go:build !linux

package local

import "os"

// renameNoReplace renames oldName to newName, both in dir, failing with an
// error matching os.ErrExist when newName is taken.
func renameNoReplace(dir *os.File, oldName, newName string) error {
	return renameChecked(dir.Name(), oldName, newName)
}
