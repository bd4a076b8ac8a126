// Command attackcheck replays known attacks against a running mailgate demo
// and reports, for each, whether mailgate refused it. It is run by
// scripts/attack, which starts the demo and provisions what the attacks
// need (a relay login, an API token, a second tenant).
//
// Each case prints "PASS <name>: <what happened>" when the attack was
// refused, "FAIL <name>: ..." when it was not. The last line is
//
//	attack: N/M refused, peak-rss-mb=X
//
// where X is the demo process's peak resident memory (VmHWM) after the
// floods. The exit status is 1 when any attack was not refused.
package main

import (
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

type env struct {
	web, inbound, relay string // host:port
	pid                 int
	token               string // tenant admin API token (write scope)
	relayUser, relayPw  string
	adminLogin, userPw  string
	otherDomain         string // a domain another tenant holds
}

type result struct {
	name    string
	refused bool
	detail  string
}

func main() {
	var e env
	flag.StringVar(&e.web, "web", "127.0.0.1:8080", "console address")
	flag.StringVar(&e.inbound, "inbound", "127.0.0.1:2525", "inbound SMTP address")
	flag.StringVar(&e.relay, "relay", "127.0.0.1:10025", "outbound relay address")
	flag.IntVar(&e.pid, "pid", 0, "mailgate's process ID (peak memory)")
	flag.StringVar(&e.token, "token", "", "tenant administrator API token")
	flag.StringVar(&e.relayUser, "relay-user", "relay1", "relay login")
	flag.StringVar(&e.relayPw, "relay-password", "", "relay login's password")
	flag.StringVar(&e.adminLogin, "admin", "it@example.test", "tenant administrator login")
	flag.StringVar(&e.userPw, "password", "mailgate-demo", "the demo logins' password")
	flag.StringVar(&e.otherDomain, "other-domain", "other.test", "a domain of another tenant")
	flag.Parse()

	cases := []func(env) result{
		enumerationTiming, // first: before any flood has filled the throttles
		loginFlood,
		smtpAuthFlood,
		ssrf,
		openRedirect,
		langCSRF,
		csvInjection,
		nulSearch,
		domainEnumeration,
	}
	var results []result
	for _, c := range cases {
		r := c(e)
		results = append(results, r)
		verdict := "PASS"
		if !r.refused {
			verdict = "FAIL"
		}
		fmt.Printf("%s %s: %s\n", verdict, r.name, r.detail)
	}
	n := 0
	for _, r := range results {
		if r.refused {
			n++
		}
	}
	fmt.Printf("attack: %d/%d refused, peak-rss-mb=%s\n", n, len(results), peakRSS(e.pid))
	if n != len(results) {
		os.Exit(1)
	}
}

// peakRSS reads VmHWM of pid from /proc.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return "?"
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return fmt.Sprintf("%.0f", float64(kb)/1024)
}

// from returns an HTTP client whose connections come from a loopback
// source address of its own, so per-address throttles of one case do not
// spill into the next.
func from(src string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Jar:       jar,
		Timeout:   120 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 100},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the login page and returns a client holding its
// double-submit cookie and the form token.
func loginForm(web, src string) (*http.Client, string, error) {
	jar, _ := cookiejar.New(nil)
	c := from(src, jar)
	resp, err := c.Get("http://" + web + "/login")
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(b)
	if m == nil {
		return nil, "", fmt.Errorf("no form token on /login (status %d)", resp.StatusCode)
	}
	return c, string(m[1]), nil
}

func postLogin(c *http.Client, web, token, login, pw, next string) (int, string, time.Duration, error) {
	start := time.Now()
	resp, err := c.PostForm("http://"+web+"/login", url.Values{"csrf": {token}, "login": {login}, "password": {pw}, "next": {next}})
	if err != nil {
		return 0, "", 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), time.Since(start), nil
}

// enumerationTiming: a wrong password for an existing login must take as
// long as any password for a login that does not exist.
func enumerationTiming(e env) result {
	r := result{name: "account enumeration by timing"}
	var known, unknown []time.Duration
	for i := 0; i < 3; i++ {
		for _, k := range []bool{true, false} {
			login := fmt.Sprintf("nobody%d@example.test", i)
			if k {
				login = e.adminLogin
			}
			c, tok, err := loginForm(e.web, fmt.Sprintf("127.0.1.%d", 10+i*2+map[bool]int{true: 0, false: 1}[k]))
			if err != nil {
				r.detail = err.Error()
				return r
			}
			_, _, d, err := postLogin(c, e.web, tok, login, "wrong-password", "/")
			if err != nil {
				r.detail = err.Error()
				return r
			}
			if k {
				known = append(known, d)
			} else {
				unknown = append(unknown, d)
			}
		}
	}
	mk, mu := median(known), median(unknown)
	r.refused = mu*2 >= mk
	r.detail = fmt.Sprintf("median answer for an existing login %v, for an unknown one %v", mk.Round(time.Millisecond), mu.Round(time.Millisecond))
	return r
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// loginFlood: 60 concurrent wrong passwords for one login from one address
// must mostly be refused before any password is checked.
func loginFlood(e env) result {
	r := result{name: "console login flood"}
	const n = 60
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	c, tok, err := loginForm(e.web, "127.0.2.1")
	if err != nil {
		r.detail = err.Error()
		return r
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, _, err := postLogin(c, e.web, tok, "admin", "wrong-password", "/")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			codes[code]++
		}()
	}
	wg.Wait()
	checked := n - codes[http.StatusTooManyRequests]
	r.refused = codes[http.StatusTooManyRequests] > 0 && checked <= 10 && codes[-1] == 0
	r.detail = fmt.Sprintf("%d attempts: %d checked (401 and others), %d refused with 429, %d errors", n, checked, codes[http.StatusTooManyRequests], codes[-1])
	return r
}

// smtpAuthFlood: 80 concurrent wrong AUTH PLAIN attempts on the relay,
// then the right password: the throttle must still refuse it.
func smtpAuthFlood(e env) result {
	r := result{name: "SMTP AUTH flood"}
	const n = 80
	replies := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	try := func(pw string) string {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.3.1")}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", e.relay)
		if err != nil {
			return "dial error"
		}
		c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			conn.Close()
			return "starttls: " + err.Error()
		}
		defer c.Close()
		err = c.Auth(sasl.NewPlainClient("", e.relayUser, pw))
		if err == nil {
			return "235"
		}
		if se, ok := err.(*smtp.SMTPError); ok {
			return strconv.Itoa(se.Code)
		}
		return "error"
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := try("wrong-password")
			mu.Lock()
			replies[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	right := try(e.relayPw)
	r.refused = replies["235"] == 0 && replies["535"] <= 10 && right != "235"
	r.detail = fmt.Sprintf("%d wrong passwords answered %v; the right one next: %s", n, replies, right)
	return r
}

func api(e env, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, "http://"+e.web+"/api/v1"+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := from("127.0.4.1", nil).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// ssrf: a tenant administrator points delegated login at internal
// addresses to use the gateway as a port scanner.
func ssrf(e env) result {
	r := result{name: "SSRF through delegated login targets", refused: true}
	var got []string
	for _, kv := range [][2]string{
		{"login.imap", "127.0.0.1:22"}, {"login.smtp", "10.0.0.1:25"}, {"login.imap", "[::1]:143"},
		{"login.oidc_issuer", "http://169.254.169.254/latest"}, {"login.imap", "localhost:6379"},
	} {
		code, _, err := api(e, "PUT", "/policy", map[string]string{"scope": "tenant", "key": kv[0], "value": kv[1]})
		if err != nil || code/100 == 2 {
			r.refused = false
		}
		got = append(got, fmt.Sprintf("%s=%s→%d", kv[0], kv[1], code))
	}
	r.detail = strings.Join(got, " ")
	return r
}

// openRedirect: the login's next parameter must never lead off-site.
func openRedirect(e env) result {
	r := result{name: "open redirect after login", refused: true}
	var got []string
	for i, next := range []string{"/\t/evil.test/x", "//evil.test/", "/\\evil.test", "https://evil.test/", "/%2F%2Fevil.test", "/\x00//evil.test"} {
		c, tok, err := loginForm(e.web, fmt.Sprintf("127.0.5.%d", i+1))
		if err != nil {
			r.refused, r.detail = false, err.Error()
			return r
		}
		code, loc, _, err := postLogin(c, e.web, tok, "alice@example.test", e.userPw, next)
		if err != nil {
			r.refused, r.detail = false, err.Error()
			return r
		}
		u, perr := url.Parse(strings.Map(func(r rune) rune {
			if r < 0x20 {
				return -1 // what lenient URL parsers do
			}
			return r
		}, loc))
		offsite := perr != nil || u.Host != "" || u.Scheme != "" || strings.HasPrefix(u.Path, "//") || strings.Contains(loc, "\\") || strings.Contains(loc, "evil")
		if code/100 != 3 || offsite {
			r.refused = false
		}
		got = append(got, fmt.Sprintf("%q→%d %q", next, code, loc))
	}
	r.detail = strings.Join(got, " ")
	return r
}

// langCSRF: the language switch is a state change and needs a token.
func langCSRF(e env) result {
	r := result{name: "language switch without CSRF token"}
	resp, err := from("127.0.6.1", nil).PostForm("http://"+e.web+"/lang", url.Values{"lang": {"en"}, "next": {"//evil.test/"}})
	if err != nil {
		r.detail = err.Error()
		return r
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	r.refused = resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadRequest
	r.detail = fmt.Sprintf("POST /lang without token → %d %s", resp.StatusCode, loc)
	return r
}

// csvInjection: addresses an outside sender chooses end up in the
// report CSV; none may start a spreadsheet formula.
func csvInjection(e env) result {
	r := result{name: "CSV formula injection through RCPT TO"}
	c, err := smtp.Dial(e.inbound)
	if err != nil {
		r.detail = err.Error()
		return r
	}
	c.Hello("attacker.example")
	c.Mail("x@attacker.example", nil)
	for _, a := range []string{"=1+2@example.test", "+SUM(A1)@example.test", "@cmd@example.test", "-2+3@example.test"} {
		c.Rcpt(a, nil)
	}
	c.Rcpt("alice@example.test", nil)
	if w, err := c.Data(); err == nil {
		io.WriteString(w, "From: =HYPERLINK(\"http://evil.test\")<x@attacker.example>\r\nSubject: =cmd|' /C calc'!A0\r\n\r\nhi\r\n")
		w.Close()
	}
	c.Quit()
	day := time.Now().Format("2006-01-02")
	var bad []string
	rows := 0
	for _, path := range []string{"/reports?format=csv&by=address&from=" + day + "&to=" + day, "/reports?format=csv&by=domain&from=" + day + "&to=" + day} {
		code, body, err := api(e, "GET", path, nil)
		if err != nil || code != 200 {
			r.detail = fmt.Sprintf("GET %s → %d %v", path, code, err)
			return r
		}
		recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			r.detail = "report CSV unreadable: " + err.Error()
			return r
		}
		rows += len(recs)
		for _, rec := range recs {
			for _, cell := range rec {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					if _, err := strconv.ParseFloat(cell, 64); err != nil {
						bad = append(bad, cell)
					}
				}
			}
		}
	}
	r.refused = len(bad) == 0 && rows > 1
	r.detail = fmt.Sprintf("%d report rows, formula cells: %q", rows, bad)
	return r
}

// nulSearch: a NUL byte in a search is a clear 400, not a 500 and not
// "match everything".
func nulSearch(e env) result {
	r := result{name: "NUL byte in a tracking search"}
	code, body, err := api(e, "GET", "/messages?subject=%00", nil)
	if err != nil {
		r.detail = err.Error()
		return r
	}
	r.refused = code == http.StatusBadRequest
	r.detail = fmt.Sprintf("GET /api/v1/messages?subject=%%00 → %d %.80s", code, oneLine(body))
	return r
}

// domainEnumeration: a tenant administrator must not learn which domains
// other tenants hold, nor claim a domain without proving ownership.
func domainEnumeration(e env) result {
	r := result{name: "domain enumeration and claiming"}
	codeTaken, bodyTaken, err := api(e, "POST", "/domains", map[string]any{"name": e.otherDomain})
	if err != nil {
		r.detail = err.Error()
		return r
	}
	codeFree, bodyFree, _ := api(e, "POST", "/domains", map[string]any{"name": "never-registered-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".test"})
	var free struct {
		Verified bool `json:"Verified"`
	}
	json.Unmarshal(bodyFree, &free)
	taken := codeTaken == http.StatusConflict || strings.Contains(strings.ToLower(string(bodyTaken)), "exist")
	claimed := codeFree/100 == 2 && free.Verified
	r.refused = !taken && !claimed && codeTaken/100 != 2
	r.detail = fmt.Sprintf("another tenant's domain → %d %.80s; a free domain → %d (verified=%v)", codeTaken, oneLine(bodyTaken), codeFree, free.Verified)
	return r
}

// oneLine collapses a JSON answer to one line for the report.
func oneLine(b []byte) string { return strings.Join(strings.Fields(string(b)), " ") }
