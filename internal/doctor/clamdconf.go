package doctor

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/bytesize"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
)

// ClamdConf reads the configuration file of the clamd that listens on
// socket (checks.clamd), returning its path and text; found is false when
// no configuration on this host names that socket.
type ClamdConf func(socket string) (path string, text []byte, found bool, err error)

// ClamdConfPaths are where packaged clamd configurations live (Debian and
// Ubuntu, Fedora and RHEL, FreeBSD and source builds).
var ClamdConfPaths = []string{"/etc/clamav/clamd.conf", "/etc/clamd.d/scan.conf", "/usr/local/etc/clamd.conf", "/etc/clamd.conf"}

// parseClamdConf reads clamd.conf's "Name value" lines (names are
// case-insensitive; a later line wins), skipping comments and blanks.
func parseClamdConf(text []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.Fields(line)[0]
		out[strings.ToLower(name)] = strings.Trim(strings.TrimSpace(line[len(name):]), `"`)
	}
	return out
}

// SameSocket reports whether the configured LocalSocket of a clamd.conf is
// the socket path mailgate is given, /var/run and /run being the same
// directory on current systems.
func SameSocket(conf []byte, socket string) bool {
	ls := parseClamdConf(conf)["localsocket"]
	norm := func(p string) string {
		p = filepath.Clean(p)
		if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
			p = "/run/" + rest
		}
		return p
	}
	return ls != "" && norm(ls) == norm(socket)
}

// clamdSize reads a clamd size ("25M", "400K", "1048576"); 0 means no
// limit. ok is false for a missing value or one that is no size.
func clamdSize(v string) (int64, bool) {
	n, err := bytesize.Parse(v)
	return n, err == nil
}

func yes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "1":
		return true
	}
	return false
}

// clamdLimits compares the local clamd's limits with mailgate's: a scan
// clamd ends early fails the message, a message longer than clamd reads
// as a stream is unscannable, and content past clamd's scan limits is
// reported clean unless clamd is told to say it stopped.
func (r *run) clamdLimits() {
	cc := r.d.Config.Checks
	if r.d.ClamdConf == nil || !cc.On("av") || !strings.Contains(cc.Clamd, "/") {
		return
	}
	path, text, found, err := r.d.ClamdConf(cc.Clamd)
	switch {
	case err != nil:
		r.add("clamd limits", Warn, "clamd's configuration could not be read: %v", err)
		return
	case !found:
		r.add("clamd limits", OK, "no clamd configuration on this host names %s; its limits were not compared", cc.Clamd)
		return
	}
	conf := parseClamdConf(text)
	var problems []string
	readTimeout := 120 * time.Second // clamd's default
	if v, ok := conf["readtimeout"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			readTimeout = time.Duration(n) * time.Second
		}
	}
	if avt := cc.AVTimeout.Duration; readTimeout > 0 && readTimeout <= avt {
		problems = append(problems, fmt.Sprintf("ReadTimeout %s is not above checks.av_timeout %s: a scan that takes longer ends with clamd closing the connection (the message is deferred); raise ReadTimeout above it", readTimeout, avt))
	}
	max := r.d.Config.Limits.MaxMessageBytes
	if n, ok := clamdSize(conf["streammaxlength"]); ok && n > 0 && n < max {
		problems = append(problems, fmt.Sprintf("StreamMaxLength %s is below limits.max_message_bytes %s: a message clamd reads as a stream (those over 25 MiB) and longer than that is unscannable (av.unscannable_action, quarantine by default); raise StreamMaxLength to it or lower limits.max_message_bytes", size(n), size(max)))
	}
	// Every connection, an idle IDSESSION one included, takes one of
	// clamd's MaxQueue slots, and while all are taken clamd accepts no
	// connection from anyone. mailgate keeps up to clamd.MaxIdle sessions
	// idle; the queue must still hold MaxThreads scans besides.
	maxQueue, maxThreads := 100, 10 // clamd's defaults
	if n, err := strconv.Atoi(conf["maxqueue"]); err == nil {
		maxQueue = n
	}
	if n, err := strconv.Atoi(conf["maxthreads"]); err == nil {
		maxThreads = n
	}
	if maxQueue < clamd.MaxIdle+maxThreads {
		problems = append(problems, fmt.Sprintf("MaxQueue %d is below the %d idle connections mailgate keeps plus MaxThreads %d: with mailgate's connections idle, clamd would queue fewer scans than it runs, and other clients of this clamd (and other mailgate processes on this host) would wait for a slot; raise MaxQueue to at least %d", maxQueue, clamd.MaxIdle, maxThreads, clamd.MaxIdle+maxThreads))
	}
	if !yes(conf["alertexceedsmax"]) {
		var lims []string
		for _, k := range []struct{ key, name string }{{"maxfilesize", "MaxFileSize"}, {"maxscansize", "MaxScanSize"}} {
			if v, ok := conf[k.key]; ok {
				lims = append(lims, k.name+" "+v)
			}
		}
		what := "its size limits"
		if len(lims) > 0 {
			what = strings.Join(lims, ", ")
		}
		problems = append(problems, fmt.Sprintf("AlertExceedsMax is off: content past %s (a large attachment, an archive's later members) is not scanned and clamd still answers clean; set AlertExceedsMax yes and mailgate treats such messages as unscannable", what))
	}
	if len(problems) == 0 {
		r.add("clamd limits", OK, "%s: ReadTimeout %s above checks.av_timeout, stream and scan limits reported, MaxQueue %d at least mailgate's %d idle connections plus MaxThreads %d", path, readTimeout, maxQueue, clamd.MaxIdle, maxThreads)
		return
	}
	r.add("clamd limits", Warn, "%s: %s", path, strings.Join(problems, "; "))
}
