// Package s3 keeps blobs in an S3-compatible object store (AWS S3, MinIO,
// Ceph RGW, versitygw), which several nodes share.
//
// A blob is one object, written by a single PUT once the whole content is
// known: Commit returns when the store has acknowledged it (the durability
// that gives depends on the store: docs/cluster.md). Until then a writer
// keeps the content in memory, or beyond a small size in an unlinked local
// file, so a session never holds a large message in memory and a crash
// leaves nothing behind. The PUT carries the content's SHA-256 both as the
// S3 checksum header (the store verifies the upload) and as object metadata
// with the content length, which every read checks again.
//
// Layout in the bucket: <prefix><namespace>/<node>/<name>; damaged blobs
// are moved to <prefix><namespace>-corrupt/<node>/<name>.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailgate/mailgate/internal/blob"
)

// Config locates the bucket and holds the credentials.
type Config struct {
	// Endpoint is the store's URL: http(s)://host[:port], no path.
	Endpoint string
	Bucket   string
	Region   string
	// Prefix starts every key mailgate writes (several installations may
	// share a bucket).
	Prefix string
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// instead of the host name (http://bucket.host/key); most stores other
	// than AWS need it.
	PathStyle bool
	// AccessKeyID and SecretAccessKey; SecretFile, when set, holds the
	// secret on its first line. Empty: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY from the environment.
	AccessKeyID     string
	SecretAccessKey string
	SecretFile      string
	// CAFile holds PEM certificates trusted for the endpoint besides the
	// system's (a private CA).
	CAFile string
	// SpillDir holds the content of writers beyond MemoryLimit until their
	// PUT (unlinked files). Empty: the system's temporary directory.
	SpillDir string
	// MemoryLimit is how much of one blob a writer keeps in memory
	// (default 128 KiB).
	MemoryLimit int
}

// Metadata recorded with each object (x-amz-meta-…).
const (
	metaSum  = "Mailgate-Sha256"
	metaSize = "Mailgate-Size"
)

// startTimeout bounds the checks Open makes.
const startTimeout = 20 * time.Second

// Store is a namespace of blobs in a bucket. Safe for concurrent use.
type Store struct {
	c      *minio.Client
	cfg    Config
	bucket string
	base   string // <prefix><namespace>/
	aside  string // <prefix><namespace>-corrupt/
	node   string
	log    *slog.Logger
	// ownSpill: SpillDir is mailgate's own (Sweep may clean it).
	ownSpill bool
}

// spillPattern names spill files.
const spillPattern = "mailgate-spill-*"

var _ blob.Store = (*Store)(nil)

// Open connects to the bucket and checks, by writing, reading and deleting
// a probe object, that the credentials may use it and that the store keeps
// object metadata. Every failure is one line naming the endpoint and
// bucket (never the secret).
func Open(ctx context.Context, cfg Config, namespace, node string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := blob.CheckNode(node); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	where := fmt.Sprintf("s3 blobs: endpoint %s bucket %q", cfg.Endpoint, cfg.Bucket)
	c, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = 128 << 10
	}
	ownSpill := cfg.SpillDir != ""
	if !ownSpill {
		cfg.SpillDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: spill directory: %w", where, err)
	}
	s := &Store{c: c, cfg: cfg, bucket: cfg.Bucket, base: cfg.Prefix + namespace + "/", aside: cfg.Prefix + namespace + "-corrupt/", node: node, log: log, ownSpill: ownSpill}
	cctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := s.probe(cctx); err != nil {
		return nil, fmt.Errorf("%s: %s", where, describe(cctx, err))
	}
	return s, nil
}

func newClient(cfg Config) (*minio.Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, errors.New("endpoint must be a URL like https://s3.example.com or http://127.0.0.1:9000, without a path")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("no bucket")
	}
	ak, sk := cfg.AccessKeyID, cfg.SecretAccessKey
	if cfg.SecretFile != "" {
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret_file: %w", err)
		}
		sk, _, _ = strings.Cut(string(b), "\n")
		sk = strings.TrimSpace(sk)
	}
	if ak == "" {
		ak = os.Getenv("AWS_ACCESS_KEY_ID")
	}
	if sk == "" {
		sk = os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	if ak == "" || sk == "" {
		return nil, errors.New("no credentials: set access_key_id with secret_access_key or secret_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	// Every SMTP session may PUT at once: keep their connections.
	tr.MaxIdleConnsPerHost = 256
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	return minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(ak, sk, ""), Secure: secure, Region: cfg.Region,
		BucketLookup: lookup, Transport: tr,
	})
}

// probe writes, reads back and deletes a small object.
func (s *Store) probe(ctx context.Context) error {
	// A listing (GET) rather than HEAD: its error answers carry the
	// store's error code (NoSuchBucket, InvalidAccessKeyId, ...).
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix + ".probe/", MaxKeys: 1}) {
		if o.Err != nil {
			return o.Err
		}
		break
	}
	// A name of its own: the CLI and the server of one node may start at
	// the same time.
	var rnd [8]byte
	rand.Read(rnd[:])
	key := s.cfg.Prefix + ".probe/" + s.node + "-" + strings.TrimSuffix(strings.TrimPrefix(s.base, s.cfg.Prefix), "/") + "-" + hex.EncodeToString(rnd[:])
	body := []byte("mailgate start-up check\r\n")
	// The same options as every blob's PUT, so a store that refuses one of
	// them fails here, not at the first message.
	opts := putOptions(body)
	opts.SetMatchETagExcept("*")
	if _, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(body), int64(len(body)), opts); err != nil {
		return fmt.Errorf("writing a test object: %w", err)
	}
	defer s.c.RemoveObject(context.WithoutCancel(ctx), s.bucket, key, minio.RemoveObjectOptions{})
	r, err := s.open(ctx, key, key)
	if err != nil {
		return fmt.Errorf("reading the test object back: %w", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, body) {
		return fmt.Errorf("reading the test object back: %v", err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("deleting the test object: %w", err)
	}
	return nil
}

// describe turns a start-up failure into its likely cause.
func describe(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("no answer within %s (%v)", startTimeout, err)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return "cannot reach the endpoint: " + err.Error()
	}
	var e minio.ErrorResponse
	if !errors.As(err, &e) {
		return err.Error()
	}
	switch e.Code {
	case minio.NoSuchBucket:
		return "the bucket does not exist (create it first)"
	case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter: versitygw
		return "the access key is not known to the store (InvalidAccessKeyId)"
	case "SignatureDoesNotMatch":
		return "the secret key is wrong (SignatureDoesNotMatch)"
	case "AccessDenied":
		return "access denied: the credentials may not read, write and delete objects in this bucket (AccessDenied)"
	}
	return err.Error()
}

// putOptions records the content's length and SHA-256 with the object and
// has the store verify the upload against the same SHA-256.
func putOptions(content []byte) minio.PutObjectOptions {
	sum := sha256.Sum256(content)
	return objectOptions(int64(len(content)), sum)
}

func objectOptions(size int64, sum blob.Sum) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType:      "message/rfc822",
		DisableMultipart: true, // one PUT: all or nothing, checksum of the whole
		UserMetadata: map[string]string{
			metaSum:  hex.EncodeToString(sum[:]),
			metaSize: strconv.FormatInt(size, 10),
		},
		// Content-MD5: every S3 store verifies the upload against it. It
		// replaces the payload's SHA-256 in the signature, whose chunked
		// encoding over plain http some stores mishandle on a kept-alive
		// connection (versitygw).
		SendContentMd5:       true,
		DisableContentSha256: true,
	}
}

func (s *Store) Node() string      { return s.node }
func (s *Store) Healthy() error    { return nil }
func (s *Store) CheckSpace() error { return nil }
func (s *Store) Close() error      { return nil }

// objectKey validates key and returns its object name.
func (s *Store) objectKey(key string) (string, error) {
	if _, _, ok := blob.Split(key); !ok {
		return "", fmt.Errorf("blobs: invalid key %q", key)
	}
	return s.base + key, nil
}

// writer collects one blob until Commit PUTs it.
type writer struct {
	s    *Store
	key  string
	buf  []byte
	f    *os.File // spill file, already unlinked
	h    hash.Hash
	n    int64
	err  error
	done bool
}

// Create starts a new blob.
func (s *Store) Create(ctx context.Context, name string) (blob.Writer, error) {
	if !blob.ValidName(name) {
		return nil, fmt.Errorf("blobs: invalid name %q", name)
	}
	return &writer{s: s, key: blob.Key(s.node, name), h: sha256.New()}, nil
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("blobs: write after commit or abort")
	}
	if w.f == nil && len(w.buf)+len(p) > w.s.cfg.MemoryLimit {
		f, err := os.CreateTemp(w.s.cfg.SpillDir, spillPattern)
		if err != nil {
			w.err = fmt.Errorf("blobs: spill file: %w", err)
			return 0, w.err
		}
		// Unlinked at once: nothing is left behind by a crash.
		os.Remove(f.Name())
		w.f = f
		if _, err := f.Write(w.buf); err != nil {
			w.err = spillErr(err)
			return 0, w.err
		}
		w.buf = nil
	}
	if w.f != nil {
		n, err := w.f.Write(p)
		w.h.Write(p[:n])
		w.n += int64(n)
		if err != nil {
			w.err = spillErr(err)
		}
		return n, w.err
	}
	w.buf = append(w.buf, p...)
	w.h.Write(p)
	w.n += int64(len(p))
	return len(p), nil
}

func spillErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("blobs: spill file: %w", blob.ErrLowSpace)
	}
	return fmt.Errorf("blobs: spill file: %w", err)
}

func (w *writer) Size() int64 { return w.n }
func (w *writer) Key() string { return w.key }

// Commit PUTs the blob and returns once the store has acknowledged it.
// The PUT is conditional (If-None-Match: *): an existing blob is never
// replaced.
func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return errors.New("blobs: blob already finished")
	}
	w.done = true
	defer w.release()
	if w.err != nil {
		return w.err
	}
	var sum blob.Sum
	w.h.Sum(sum[:0])
	var body io.Reader = bytes.NewReader(w.buf)
	if w.f != nil {
		body = io.NewSectionReader(w.f, 0, w.n)
	}
	opts := objectOptions(w.n, sum)
	opts.SetMatchETagExcept("*")
	obj := w.s.base + w.key
	if _, err := w.s.c.PutObject(ctx, w.s.bucket, obj, body, w.n, opts); err != nil {
		if e := minio.ToErrorResponse(err); e.StatusCode == http.StatusPreconditionFailed {
			return fmt.Errorf("blobs: %s: %w", w.key, blob.ErrExists)
		}
		// The store may have kept it even so (an answer lost on the way):
		// nothing may stay under a key whose commit failed. The name is
		// this node's and this writer's alone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := w.s.c.RemoveObject(dctx, w.s.bucket, obj, minio.RemoveObjectOptions{}); derr != nil {
			w.s.log.Warn("s3 blobs: removing the object of a failed PUT", "key", w.key, "err", derr)
		}
		return fmt.Errorf("blobs: PUT %s: %w", w.key, err)
	}
	return nil
}

func (w *writer) release() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.buf = nil
}

// Abort discards the blob (nothing was sent).
func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.release()
}

// Open GETs a blob; its size is checked at once against the recorded one,
// its checksum at the end.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, key, obj)
}

func (s *Store) open(ctx context.Context, key, obj string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("blobs open %s: %w", key, err)
	}
	info, err := o.Stat()
	if err != nil {
		o.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("blobs open %s: %w", key, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("blobs open %s: %w", key, err)
	}
	var sum blob.Sum
	hexSum := info.Metadata.Get("X-Amz-Meta-" + metaSum)
	size, serr := strconv.ParseInt(info.Metadata.Get("X-Amz-Meta-"+metaSize), 10, 64)
	if n, err := hex.Decode(sum[:], []byte(hexSum)); err != nil || n != len(sum) || serr != nil {
		o.Close()
		return nil, blob.Damaged(key, "no recorded size and SHA-256 (object metadata)")
	}
	if info.Size != size {
		o.Close()
		return nil, blob.Damaged(key, "%d bytes stored, %d recorded", info.Size, size)
	}
	return blob.Verified(o, o, key, size, sum), nil
}

func isNotFound(err error) bool {
	e := minio.ToErrorResponse(err)
	return e.Code == minio.NoSuchKey || e.StatusCode == http.StatusNotFound
}

// Delete removes a blob. Missing blobs are not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("blobs delete %s: %w", key, err)
	}
	return nil
}

// List yields the blobs whose key starts with prefix, with their stored
// sizes.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops the listing goroutine when the caller stops early
		for o := range s.c.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: s.base + prefix, Recursive: true}) {
			if o.Err != nil {
				yield(blob.Info{}, fmt.Errorf("blobs list: %w", o.Err))
				return
			}
			key := strings.TrimPrefix(o.Key, s.base)
			if node, _, ok := blob.Split(key); !ok || node == "" {
				continue // not a blob mailgate wrote
			}
			if !yield(blob.Info{Key: key, Size: o.Size}, nil) {
				return
			}
		}
	}
}

// MoveAside copies a blob to the "-corrupt" namespace and deletes it,
// never replacing an earlier copy there.
func (s *Store) MoveAside(ctx context.Context, key string) (string, error) {
	obj, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	dst := s.aside + key
	if _, err := s.c.StatObject(ctx, s.bucket, dst, minio.StatObjectOptions{}); err == nil {
		dst += fmt.Sprintf(".%d", time.Now().UnixNano())
	}
	if _, err := s.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: dst}, minio.CopySrcOptions{Bucket: s.bucket, Object: obj}); err != nil {
		return "", fmt.Errorf("blobs move aside %s: %w", key, err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		return "", fmt.Errorf("blobs move aside %s: %w", key, err)
	}
	return "s3://" + s.bucket + "/" + dst, nil
}

// Sweep removes spill files a crash left between their creation and their
// unlinking, when the spill directory is mailgate's own.
func (s *Store) Sweep(ctx context.Context) error {
	if !s.ownSpill {
		return nil
	}
	names, err := filepath.Glob(filepath.Join(s.cfg.SpillDir, spillPattern))
	if err != nil {
		return fmt.Errorf("blobs sweep: %w", err)
	}
	for _, n := range names {
		os.Remove(n)
	}
	return nil
}
