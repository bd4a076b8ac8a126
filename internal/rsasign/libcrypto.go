//go:build cgo && linux

package rsasign

// The few OpenSSL 3 functions used are looked up with dlsym and declared
// here with opaque pointer types, so no OpenSSL header is needed to build
// and a machine without libcrypto still runs the binary. Every call that
// can leave an error in OpenSSL's per-thread error queue reads and clears
// it in the same C call: the next cgo call may run on another thread.
//
// Concurrency: one EVP_PKEY per key, shared by every signer, and a new
// EVP_PKEY_CTX per signature. openssl-threads(7): objects are safe to use
// from many threads as long as none modifies them, and two threads may
// sign with two contexts; RSA blinding state inside the key is locked by
// OpenSSL. The key is never modified after the self-check that follows
// its conversion (newKey), which also fills any cache OpenSSL keeps in it.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MG_EVP_PKEY_RSA 6
#define MG_RSA_PKCS1_PADDING 1
#define MG_OPENSSL_VERSION 0

static struct {
	void *(*d2i_PrivateKey)(int, void **, const unsigned char **, long);
	void (*EVP_PKEY_free)(void *);
	void *(*EVP_PKEY_CTX_new)(void *, void *);
	void (*EVP_PKEY_CTX_free)(void *);
	int (*EVP_PKEY_sign_init)(void *);
	int (*EVP_PKEY_CTX_set_rsa_padding)(void *, int);
	int (*EVP_PKEY_CTX_set_signature_md)(void *, const void *);
	int (*EVP_PKEY_sign)(void *, unsigned char *, size_t *, const unsigned char *, size_t);
	int (*EVP_PKEY_get_size)(const void *);
	const void *(*EVP_sha1)(void);
	const void *(*EVP_sha256)(void);
	const void *(*EVP_sha384)(void);
	const void *(*EVP_sha512)(void);
	const char *(*OpenSSL_version)(int);
	unsigned long (*OpenSSL_version_num)(void);
	unsigned long (*ERR_get_error)(void);
	void (*ERR_error_string_n)(unsigned long, char *, size_t);
	void (*ERR_clear_error)(void);
} mg_f;

static const void *mg_md[5];

// mg_err writes what went wrong to err: the first error in OpenSSL's
// queue, or what when the queue is empty; the queue is cleared.
static void mg_err(const char *what, char *err, size_t errlen) {
	unsigned long e = mg_f.ERR_get_error();
	if (e != 0) {
		char buf[256];
		mg_f.ERR_error_string_n(e, buf, sizeof buf);
		snprintf(err, errlen, "%s: %s", what, buf);
	} else {
		snprintf(err, errlen, "%s", what);
	}
	mg_f.ERR_clear_error();
}

// mg_load opens libcrypto (name: libcrypto.so.3) and looks up every
// function; 0 on success.
static int mg_load(const char *name, char *err, size_t errlen) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return -1;
	}
#define MG_SYM(name) \
	*(void **)(&mg_f.name) = dlsym(h, #name); \
	if (mg_f.name == NULL) { snprintf(err, errlen, "libcrypto.so.3 has no %s", #name); dlclose(h); return -1; }
	MG_SYM(d2i_PrivateKey)
	MG_SYM(EVP_PKEY_free)
	MG_SYM(EVP_PKEY_CTX_new)
	MG_SYM(EVP_PKEY_CTX_free)
	MG_SYM(EVP_PKEY_sign_init)
	MG_SYM(EVP_PKEY_CTX_set_rsa_padding)
	MG_SYM(EVP_PKEY_CTX_set_signature_md)
	MG_SYM(EVP_PKEY_sign)
	MG_SYM(EVP_PKEY_get_size)
	MG_SYM(EVP_sha1)
	MG_SYM(EVP_sha256)
	MG_SYM(EVP_sha384)
	MG_SYM(EVP_sha512)
	MG_SYM(OpenSSL_version)
	MG_SYM(OpenSSL_version_num)
	MG_SYM(ERR_get_error)
	MG_SYM(ERR_error_string_n)
	MG_SYM(ERR_clear_error)
#undef MG_SYM
	if (mg_f.OpenSSL_version_num() < 0x30000000UL) {
		snprintf(err, errlen, "libcrypto.so.3 is not OpenSSL 3 (%s)", mg_f.OpenSSL_version(MG_OPENSSL_VERSION));
		dlclose(h);
		return -1;
	}
	mg_md[1] = mg_f.EVP_sha1();
	mg_md[2] = mg_f.EVP_sha256();
	mg_md[3] = mg_f.EVP_sha384();
	mg_md[4] = mg_f.EVP_sha512();
	for (int i = 1; i <= 4; i++) {
		if (mg_md[i] == NULL) {
			snprintf(err, errlen, "libcrypto.so.3 has no digest %d", i);
			return -1;
		}
	}
	return 0;
}

static const char *mg_version(void) { return mg_f.OpenSSL_version(MG_OPENSSL_VERSION); }

// mg_key decodes a PKCS #1 RSAPrivateKey; NULL on error.
static void *mg_key(const unsigned char *der, long len, int *size, char *err, size_t errlen) {
	const unsigned char *p = der;
	void *k = mg_f.d2i_PrivateKey(MG_EVP_PKEY_RSA, NULL, &p, len);
	if (k == NULL) {
		mg_err("d2i_PrivateKey", err, errlen);
		return NULL;
	}
	*size = mg_f.EVP_PKEY_get_size(k);
	return k;
}

static void mg_key_free(void *k) { mg_f.EVP_PKEY_free(k); }

// mg_sign signs a digest with PKCS #1 v1.5; 1 on success. One context per
// signature: the key is shared, read-only, by concurrent signers.
static int mg_sign(void *k, int md, const unsigned char *digest, size_t dlen,
		unsigned char *sig, size_t *siglen, char *err, size_t errlen) {
	if (md < 1 || md > 4) {
		snprintf(err, errlen, "digest %d", md);
		return 0;
	}
	void *ctx = mg_f.EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) {
		mg_err("EVP_PKEY_CTX_new", err, errlen);
		return 0;
	}
	const char *step = "EVP_PKEY_sign_init";
	if (mg_f.EVP_PKEY_sign_init(ctx) > 0) {
		step = "EVP_PKEY_CTX_set_rsa_padding";
		if (mg_f.EVP_PKEY_CTX_set_rsa_padding(ctx, MG_RSA_PKCS1_PADDING) > 0) {
			step = "EVP_PKEY_CTX_set_signature_md";
			if (mg_f.EVP_PKEY_CTX_set_signature_md(ctx, mg_md[md]) > 0) {
				step = "EVP_PKEY_sign";
				if (mg_f.EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) > 0) {
					mg_f.EVP_PKEY_CTX_free(ctx);
					return 1;
				}
			}
		}
	}
	mg_err(step, err, errlen);
	mg_f.EVP_PKEY_CTX_free(ctx);
	return 0;
}
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// cgoBuild: this build can load libcrypto.
const cgoBuild = true

const errLen = 512

func cErr(b []byte) error {
	return errors.New(C.GoString((*C.char)(unsafe.Pointer(&b[0]))))
}

func load(name string) (string, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var e [errLen]byte
	if C.mg_load(cname, (*C.char)(unsafe.Pointer(&e[0])), errLen) != 0 {
		return "", cErr(e[:])
	}
	return C.GoString(C.mg_version()), nil
}

// lcKey is a key in libcrypto: an EVP_PKEY, freed when the lcKey is
// garbage collected.
type lcKey struct {
	p    unsafe.Pointer // EVP_PKEY *
	size int            // bytes in a signature
}

func convert(k *rsa.PrivateKey) (*lcKey, error) {
	der := x509.MarshalPKCS1PrivateKey(k)
	defer clear(der)
	var e [errLen]byte
	var size C.int
	p := C.mg_key((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), &size,
		(*C.char)(unsafe.Pointer(&e[0])), errLen)
	if p == nil {
		return nil, cErr(e[:])
	}
	lc := &lcKey{p: p, size: int(size)}
	if lc.size <= 0 || lc.size != k.Size() {
		C.mg_key_free(p)
		return nil, fmt.Errorf("libcrypto key of %d bytes, want %d", size, k.Size())
	}
	runtime.AddCleanup(lc, func(p unsafe.Pointer) { C.mg_key_free(p) }, p)
	return lc, nil
}

func (k *lcKey) sign(md int, digest []byte) ([]byte, error) {
	if len(digest) == 0 {
		return nil, errors.New("empty digest")
	}
	sig := make([]byte, k.size)
	n := C.size_t(len(sig))
	var e [errLen]byte
	ok := C.mg_sign(k.p, C.int(md), (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n, (*C.char)(unsafe.Pointer(&e[0])), errLen)
	// The EVP_PKEY must outlive the call: its cleanup frees it.
	runtime.KeepAlive(k)
	if ok != 1 {
		return nil, cErr(e[:])
	}
	if int(n) != k.size {
		return nil, fmt.Errorf("libcrypto signature of %d bytes, want %d", n, k.size)
	}
	return sig, nil
}
