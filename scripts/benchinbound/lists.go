package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
)

// listCSV returns n list entries for "mailgate list import" (scope, owner,
// kind, field, mode, value, action, comment). A handful are meant to match
// the mix (the deny of 未承諾広告 subjects, allows for some senders); the
// rest are the long tail a tenant accumulates over the years and match
// nothing in the mix, so they cost index size, not verdicts. None allows a
// spoofed, impersonating or advertising sender.
func listCSV(seed uint64, people []person, n int) ([]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6c697374))
	dom := func() (string, string) { return "domain", tenantDomain }
	addr := func() (string, string) { return "address", people[rng.IntN(len(people))].addr }
	var rows [][]string
	add := func(scope, owner, kind, field, mode, value, action, comment string) {
		rows = append(rows, []string{scope, owner, kind, field, mode, value, action, comment})
	}
	// The entries the mix meets.
	add("domain", tenantDomain, "deny", "subject", "contains", "未承諾広告", "", "特定電子メール法の表示")
	add("domain", tenantDomain, "allow", "from_domain", "exact", "partner-corp.test", "", "取引先")
	add("domain", tenantDomain, "allow", "from_domain", "suffix", "supplier.test", "", "")
	add("domain", tenantDomain, "allow", "env_from", "exact", "orders@supplier.test", "", "")
	add("address", "alice@"+tenantDomain, "allow", "from_addr", "exact", "news@shop-news.test", "", "")
	add("address", "bob@"+tenantDomain, "allow", "from_domain", "exact", "techweekly.test", "", "")
	// A few regexes.
	add("domain", tenantDomain, "deny", "subject", "regex", `^\[(AD|PR)\]`, "", "")
	add("domain", tenantDomain, "deny", "subject", "regex", `(?i)\b(viagra|cialis|casino)\b`, "quarantine", "")
	add("domain", tenantDomain, "deny", "from_addr", "regex", `^[a-z]{12}[0-9]{4}@`, "", "random senders")
	add("domain", tenantDomain, "deny", "env_from", "regex", `@(mail|smtp)[0-9]+\.spam-farm\.test$`, "reject", "")
	add("address", "carol@"+tenantDomain, "deny", "subject", "regex", `(?i)lottery.*winner`, "", "")

	phrases := []string{"副業で月収%d万円", "無料プレゼント第%d弾", "bitcoin bonus %d", "cheap meds %d", "WIN-%06d", "出会い%d", "高収入バイト%d"}
	words := []string{"promo", "bulk", "mailer", "offer", "deal", "cheap", "win", "fast", "best", "click"}
	for i := 0; len(rows) < n; i++ {
		scope, owner := dom()
		if rng.IntN(5) == 0 {
			scope, owner = addr()
		}
		action := ""
		switch rng.IntN(10) {
		case 0:
			action = "reject"
		case 1:
			action = "quarantine"
		}
		comment := ""
		if rng.IntN(4) == 0 {
			comment = fmt.Sprintf("ticket %d", 10000+i)
		}
		w := words[rng.IntN(len(words))]
		switch r := rng.IntN(100); {
		case r < 30:
			add(scope, owner, "deny", "from_domain", "exact", fmt.Sprintf("%s-%05d.test", w, i), action, comment)
		case r < 45:
			add(scope, owner, "deny", "env_from", "exact", fmt.Sprintf("%s%d@bulk-%03d.test", w, i, rng.IntN(1000)), action, comment)
		case r < 57:
			add(scope, owner, "deny", "from_addr", "exact", fmt.Sprintf("info%d@%s-%04d.test", i, w, rng.IntN(10000)), action, comment)
		case r < 65:
			add(scope, owner, "deny", "from_domain", "suffix", fmt.Sprintf("bad-%05d.test", i), action, comment)
		case r < 75:
			add(scope, owner, "deny", "subject", "contains", fmt.Sprintf(phrases[rng.IntN(len(phrases))], i), action, comment)
		case r < 79:
			add(scope, owner, "deny", "subject", "prefix", fmt.Sprintf("[SPAM-%05d]", i), action, comment)
		case r < 82:
			add(scope, owner, "deny", "subject", "suffix", fmt.Sprintf(" #promo%05d", i), action, comment)
		case r < 92:
			add(scope, owner, "allow", "from_domain", "exact", fmt.Sprintf("partner-%05d.test", i), "", comment)
		case r < 96:
			add(scope, owner, "allow", "env_from", "suffix", fmt.Sprintf("@trusted-%05d.test", i), "", comment)
		default:
			add(scope, owner, "allow", "from_addr", "exact", fmt.Sprintf("contact%d@client-%04d.test", i, rng.IntN(10000)), "", comment)
		}
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("list CSV: %w", err)
	}
	return buf.Bytes(), nil
}
