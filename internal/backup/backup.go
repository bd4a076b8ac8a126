// Package backup takes a consistent snapshot of a single node's data
// directory (the embedded SQLite store and the local blob namespaces) while
// mailgate runs, and restores one into an empty data directory.
//
// Consistency rests on the accept and delete orders every stage follows: a
// blob is durable before the row that refers to it commits, and a blob is
// removed only after the row change that releases it has committed. The
// backup briefly takes SQLite's write lock (BEGIN IMMEDIATE), pins a read
// snapshot on a second connection, hard-links every blob file into a
// staging directory inside the data directory, and releases the lock.
// While the lock is held no row can be released, so every blob a snapshot
// row refers to still exists and gets linked; the links keep the files
// even when mailgate deletes them afterwards. Writers wait (busy_timeout)
// only for the linking, not for the copy: the database is then copied from
// the pinned snapshot with SQLite's online backup API, and the blobs from
// the staging links, each read back and checked against its SHA-256.
//
// A backup directory holds mailgate.db, blobs/<namespace>/... (files as
// the local blob store writes them), files/... (other state such as the
// self-signed TLS certificate) and manifest.json, written last: a
// directory without it is not a finished backup.
package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite"

	"github.com/mailgate/mailgate/internal/blob/local"
)

// DBName is the SQLite database's file name in the data directory.
const DBName = "mailgate.db"

// ManifestName is the manifest's file name in a backup directory.
const ManifestName = "manifest.json"

// Format is the manifest format this package writes and reads.
const Format = 1

// Options describe the data directory to back up.
type Options struct {
	DataDir string
	// Node is this node's name (blob keys "<node>/<name>").
	Node string
	// Namespaces are the blob namespaces (directories under DataDir).
	Namespaces []string
	// Refs gives, per namespace, a query on the snapshot returning the
	// blob keys its rows refer to; a referenced blob missing from the
	// backup is reported in Manifest.Missing.
	Refs map[string]string
	// Files are other paths under DataDir (files or directories) copied as
	// they are; absent ones are skipped.
	Files []string
	// Version is the mailgate version recorded in the manifest.
	Version string
	Log     *slog.Logger

	// afterLinks, when set, runs once the store's lock is released and
	// before anything is copied (tests: mail delivered meanwhile).
	afterLinks func()
}

// Manifest lists what a backup holds.
type Manifest struct {
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	Version  string    `json:"version"`
	Node     string    `json:"node"`
	Database File      `json:"database"`
	Blobs    []Blob    `json:"blobs"`
	Files    []File    `json:"files"`
	// Missing are blob keys the snapshot's rows refer to that were not in
	// the data directory when the snapshot was taken (already missing on
	// the running node: its recovery holds those messages).
	Missing []string `json:"missing,omitempty"`
}

// File is one file of a backup: its path relative to the backup directory,
// its size and the SHA-256 of its bytes.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Blob is one blob: its namespace and key, the file holding it, and the
// size and SHA-256 of its content (what the blob store checks on read).
type Blob struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// rawConn is what the modernc.org/sqlite driver connection offers for
// SQLite's online backup API.
type rawConn interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// Run writes a backup of o.DataDir into dest, which must not exist or be
// empty. mailgate may be running on o.DataDir meanwhile.
func Run(ctx context.Context, o Options, dest string) (m Manifest, err error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if err := mustBeEmpty(dest); err != nil {
		return m, err
	}
	dbPath := filepath.Join(o.DataDir, DBName)
	if _, err := os.Stat(dbPath); err != nil {
		return m, fmt.Errorf("backup: no store in %s: %w", o.DataDir, err)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	staging, err := os.MkdirTemp(o.DataDir, ".backup-")
	if err != nil {
		return m, fmt.Errorf("backup: staging directory: %w", err)
	}
	defer os.RemoveAll(staging)

	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(15000)")
	if err != nil {
		return m, fmt.Errorf("backup: open %s: %w", dbPath, err)
	}
	defer db.Close()
	locker, err := db.Conn(ctx)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	defer locker.Close()
	reader, err := db.Conn(ctx)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	defer reader.Close()

	// The write lock: no row commits (and so no blob is released) until
	// the snapshot is pinned and every blob file linked.
	if _, err := locker.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return m, fmt.Errorf("backup: lock the store: %w", err)
	}
	locked := true
	unlock := func() {
		if locked {
			locker.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			locked = false
		}
	}
	defer unlock()
	if _, err := reader.ExecContext(ctx, "BEGIN"); err != nil {
		return m, fmt.Errorf("backup: snapshot: %w", err)
	}
	defer reader.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	// A read transaction takes its snapshot at its first read.
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return m, fmt.Errorf("backup: snapshot: %w", err)
	}
	start := time.Now()
	staged, err := link(o, staging)
	if err != nil {
		return m, err
	}
	unlock()
	o.Log.Info("backup: snapshot taken", "blobs", len(staged), "writes_paused", time.Since(start).String())
	if o.afterLinks != nil {
		o.afterLinks()
	}

	m = Manifest{Format: Format, Created: time.Now().UTC(), Version: o.Version, Node: o.Node}
	if m.Database, err = copyDB(ctx, reader, dest); err != nil {
		return m, err
	}
	if m.Missing, err = missing(ctx, reader, o.Refs, staged); err != nil {
		return m, err
	}
	rs := readers{node: o.Node, log: o.Log}
	defer rs.close()
	for _, s := range staged {
		b, err := copyBlob(ctx, &rs, staging, dest, s)
		if err != nil {
			return m, err
		}
		m.Blobs = append(m.Blobs, b)
	}
	if m.Files, err = copyFiles(o.DataDir, o.Files, dest); err != nil {
		return m, err
	}
	if err := writeManifest(dest, m); err != nil {
		return m, err
	}
	return m, nil
}

// stagedBlob is one blob file linked into the staging directory.
type stagedBlob struct {
	ns, key, rel string // rel: path under the namespace directory
}

// link hard-links every blob file of o's namespaces into staging, keeping
// the namespace layout. Temporary files (unfinished writes) are left out.
func link(o Options, staging string) ([]stagedBlob, error) {
	var out []stagedBlob
	for _, ns := range o.Namespaces {
		root := filepath.Join(o.DataDir, ns)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				if p != root && strings.Count(rel, string(filepath.Separator)) > 0 {
					return fs.SkipDir // blobs are at most one level deep (node/name)
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") || !d.Type().IsRegular() {
				return nil
			}
			dst := filepath.Join(staging, ns, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			if err := os.Link(p, dst); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed meanwhile: not referenced by the snapshot
				}
				return err
			}
			out = append(out, stagedBlob{ns: ns, key: filepath.ToSlash(rel), rel: rel})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("backup: link blobs of %s: %w", ns, err)
		}
	}
	return out, nil
}

// copyDB copies the pinned snapshot into dest/mailgate.db with SQLite's
// online backup API, checks it and returns its checksum.
func copyDB(ctx context.Context, reader *sql.Conn, dest string) (File, error) {
	path := filepath.Join(dest, DBName)
	err := reader.Raw(func(dc any) error {
		rc, ok := dc.(rawConn)
		if !ok {
			return errors.New("the SQLite driver offers no online backup")
		}
		b, err := rc.NewBackup(path)
		if err != nil {
			return err
		}
		if _, err := b.Step(-1); err != nil {
			b.Finish()
			return err
		}
		return b.Finish()
	})
	if err != nil {
		return File{}, fmt.Errorf("backup: copy the store: %w", err)
	}
	if err := quickCheck(ctx, path); err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	return describe(dest, DBName)
}

// quickCheck runs SQLite's quick_check on the database file at path.
func quickCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("check %s: %s", path, res)
	}
	return nil
}

// missing returns the keys the snapshot's rows refer to that are not
// among the staged blobs.
func missing(ctx context.Context, reader *sql.Conn, refs map[string]string, staged []stagedBlob) ([]string, error) {
	have := map[string]bool{}
	for _, s := range staged {
		have[s.ns+" "+s.key] = true
	}
	var out []string
	nss := make([]string, 0, len(refs))
	for ns := range refs {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		rows, err := reader.QueryContext(ctx, refs[ns])
		if err != nil {
			return nil, fmt.Errorf("backup: blob references of %s: %w", ns, err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("backup: blob references of %s: %w", ns, err)
			}
			if !have[ns+" "+k] {
				out = append(out, ns+" "+k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("backup: blob references of %s: %w", ns, err)
		}
	}
	return out, nil
}

// copyBlob copies one staged blob file into dest/blobs and reads the copy
// back through the blob store, which checks it against the checksum
// recorded with it; the content's SHA-256 goes into the manifest.
func copyBlob(ctx context.Context, rs *readers, staging, dest string, s stagedBlob) (Blob, error) {
	rel := filepath.Join("blobs", s.ns, s.rel)
	if err := copyFile(filepath.Join(staging, s.ns, s.rel), filepath.Join(dest, rel)); err != nil {
		return Blob{}, fmt.Errorf("backup: blob %s %s: %w", s.ns, s.key, err)
	}
	size, sum, err := rs.contentSum(ctx, filepath.Join(dest, "blobs", s.ns), s.key)
	if err != nil {
		return Blob{}, fmt.Errorf("backup: blob %s %s: %w", s.ns, s.key, err)
	}
	return Blob{Namespace: s.ns, Key: s.key, Path: filepath.ToSlash(rel), Size: size, SHA256: sum}, nil
}

// readers opens each blob directory once as a local blob store.
type readers struct {
	node   string
	log    *slog.Logger
	stores map[string]*local.Store
}

func (rs *readers) close() {
	for _, s := range rs.stores {
		s.Close()
	}
}

// contentSum reads the blob key of the local blob store in dir to its end
// (which verifies it against the checksum recorded with it) and returns
// its content's size and SHA-256.
func (rs *readers) contentSum(ctx context.Context, dir, key string) (int64, string, error) {
	st := rs.stores[dir]
	if st == nil {
		var err error
		if st, err = local.Open(dir, rs.node, 0, rs.log); err != nil {
			return 0, "", err
		}
		if rs.stores == nil {
			rs.stores = map[string]*local.Store{}
		}
		rs.stores[dir] = st
	}
	r, err := st.Open(ctx, key)
	if err != nil {
		return 0, "", err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// copyFiles copies the listed paths under dataDir into dest/files.
func copyFiles(dataDir string, paths []string, dest string) ([]File, error) {
	var out []File
	for _, p := range paths {
		root := filepath.Join(dataDir, p)
		err := filepath.WalkDir(root, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(dataDir, fp)
			target := filepath.Join("files", rel)
			if err := copyFile(fp, filepath.Join(dest, target)); err != nil {
				return err
			}
			f, err := describe(dest, target)
			if err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("backup: %s: %w", p, err)
		}
	}
	return out, nil
}

// describe returns the File entry of rel under dir.
func describe(dir, rel string) (File, error) {
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", rel, err)
	}
	return File{Path: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copyFile copies src to dst (created, never replaced), fsyncing the file
// and its directory.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("fsync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}

func writeManifest(dest string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	tmp := filepath.Join(dest, "."+ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dest, ManifestName))
	}
	if err == nil {
		err = syncDir(dest)
	}
	if err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	return nil
}

// ReadManifest reads the manifest of the backup in dir.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("not a finished backup: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != Format {
		return m, fmt.Errorf("manifest format %d; this mailgate reads %d", m.Format, Format)
	}
	return m, m.validate()
}

// validate checks every path of the manifest before anything is copied: a
// damaged or hostile manifest must not make a restore read or write
// outside the backup and the data directory.
func (m Manifest) validate() error {
	if m.Database.Path != DBName {
		return fmt.Errorf("manifest: the store's path %q is not %s: it leaves the backup", m.Database.Path, DBName)
	}
	for _, f := range m.Files {
		if _, err := under(f.Path, "files"); err != nil {
			return err
		}
	}
	for _, b := range m.Blobs {
		rel, err := under(b.Path, "blobs")
		if err != nil {
			return err
		}
		if !validNamespace(b.Namespace) || !strings.HasPrefix(rel, b.Namespace+string(filepath.Separator)) {
			return fmt.Errorf("manifest: blob %q in namespace %q", b.Path, b.Namespace)
		}
	}
	return nil
}

// mustBeEmpty fails unless dir does not exist or is an empty directory.
func mustBeEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty (%d entries): choose a new or empty directory", dir, len(entries))
	}
	return nil
}

// Restore copies the backup in src into dataDir, which must not exist or
// be empty, verifying every file against the manifest. The data is
// assembled in a sibling directory first and renamed into place only when
// everything matched, so a failed restore leaves dataDir as it was.
func Restore(ctx context.Context, src, dataDir string, log *slog.Logger) (Manifest, error) {
	if log == nil {
		log = slog.Default()
	}
	m, err := ReadManifest(src)
	if err != nil {
		return m, fmt.Errorf("restore: %s: %w", src, err)
	}
	if err := mustBeEmpty(dataDir); err != nil {
		return m, fmt.Errorf("restore: refusing to restore into a data directory in use: %w", err)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	tmp := fmt.Sprintf("%s.restore-%s", abs, rand.Text()[:8])
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := restoreFile(src, m.Database, filepath.Join(tmp, DBName)); err != nil {
		return m, err
	}
	if err := quickCheck(ctx, filepath.Join(tmp, DBName)); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	for _, f := range m.Files {
		rel, err := under(f.Path, "files")
		if err != nil {
			return m, err
		}
		if err := restoreFile(src, f, filepath.Join(tmp, rel)); err != nil {
			return m, err
		}
	}
	rs := readers{node: m.Node, log: log}
	defer rs.close()
	for _, b := range m.Blobs {
		rel, err := under(b.Path, "blobs")
		if err != nil {
			return m, err
		}
		if err := copyFile(filepath.Join(src, filepath.FromSlash(b.Path)), filepath.Join(tmp, rel)); err != nil {
			return m, fmt.Errorf("restore: blob %s %s: %w", b.Namespace, b.Key, err)
		}
		size, sum, err := rs.contentSum(ctx, filepath.Join(tmp, b.Namespace), b.Key)
		if err != nil {
			return m, fmt.Errorf("restore: blob %s %s: %w", b.Namespace, b.Key, err)
		}
		if size != b.Size || sum != b.SHA256 {
			return m, fmt.Errorf("restore: blob %s %s differs from the manifest (%d bytes, SHA-256 %s; manifest %d, %s)",
				b.Namespace, b.Key, size, sum, b.Size, b.SHA256)
		}
	}
	// An empty dataDir is replaced by the assembled one.
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	ok = true
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	return m, nil
}

// validNamespace reports whether ns can name a blob directory.
func validNamespace(ns string) bool {
	if ns == "" || len(ns) > 64 {
		return false
	}
	for _, c := range ns {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// under returns p (slash-separated, from a manifest) without its first
// element prefix, refusing paths that would leave the directory.
func under(p, prefix string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(p))
	rel, err := filepath.Rel(prefix, clean)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(clean) {
		return "", fmt.Errorf("manifest: path %q is outside %s/", p, prefix)
	}
	return rel, nil
}

// restoreFile copies the backup's file f to dst and checks the copy's
// size and SHA-256 against the manifest.
func restoreFile(src string, f File, dst string) error {
	if filepath.IsAbs(filepath.FromSlash(f.Path)) || strings.HasPrefix(filepath.Clean(filepath.FromSlash(f.Path)), "..") {
		return fmt.Errorf("restore: manifest path %q leaves the backup", f.Path)
	}
	if err := copyFile(filepath.Join(src, filepath.FromSlash(f.Path)), dst); err != nil {
		return fmt.Errorf("restore: %s: %w", f.Path, err)
	}
	got, err := describe(filepath.Dir(dst), filepath.Base(dst))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if got.Size != f.Size || got.SHA256 != f.SHA256 {
		return fmt.Errorf("restore: %s differs from the manifest (%d bytes, SHA-256 %s; manifest %d, %s)",
			f.Path, got.Size, got.SHA256, f.Size, f.SHA256)
	}
	return nil
}
