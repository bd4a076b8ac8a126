package outbound_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// BenchmarkRelay sends messages through the outbound relay with DKIM
// signing and the rule set of scripts/bench-outbound (for profiles; the
// figures that count come from the script).
func BenchmarkRelay(b *testing.B) {
	n := mgtest.Start(b, mgtest.Options{NoChecks: true})
	set(b, n, store.ScopeDomain, "example.test", dkimsign.KeySelector, "bench")
	set(b, n, store.ScopeDomain, "example.test", dkimsign.KeyAlgorithms, "rsa")
	c := func(f, op string, v ...string) outbound.Condition {
		return outbound.Condition{Field: f, Op: op, Values: v}
	}
	addRule(b, n, "header", "", "", outbound.Spec{Action: outbound.ActHeader, Header: "X-Bench", HeaderValue: "outbound",
		Conditions: []outbound.Condition{{Field: outbound.FieldRcpt, Op: outbound.OpOutside}}})
	addRule(b, n, "zip", "", "", outbound.Spec{Action: outbound.ActZip, Conditions: []outbound.Condition{c(outbound.FieldSubject, outbound.OpContains, "ZIP-BENCH")}})
	for i := 1; i <= 198; i++ {
		var sp outbound.Spec
		switch i % 8 {
		case 0:
			sp = outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{c(outbound.FieldAttachText, outbound.OpContains, fmt.Sprintf("顧客リスト%d", i), fmt.Sprintf("マイナンバー%d", i))}}
		case 1:
			sp = outbound.Spec{Action: outbound.ActTag, Tag: "[社外秘]", Conditions: []outbound.Condition{c(outbound.FieldAttachText, outbound.OpRegex, fmt.Sprintf("極秘[0-9]+-%d", i))}}
		case 2:
			sp = outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{c(outbound.FieldBody, outbound.OpContains, fmt.Sprintf("社外秘%d", i), fmt.Sprintf("confidential-%d", i))}}
		case 3:
			sp = outbound.Spec{Action: outbound.ActHold, Conditions: []outbound.Condition{c(outbound.FieldSubject, outbound.OpRegex, fmt.Sprintf(`^\[(見積|請求)%d\]`, i))}}
		case 4:
			sp = outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{c(outbound.FieldAttachName, outbound.OpSuffix, fmt.Sprintf(".exe%d", i))}}
		case 5:
			sp = outbound.Spec{Action: outbound.ActHold, Conditions: []outbound.Condition{c(outbound.FieldAttachType, outbound.OpIs, "exe"),
				{Field: outbound.FieldHeader, Header: fmt.Sprintf("X-Bench-%d", i), Op: outbound.OpExact, Values: []string{"yes"}}}}
		case 6:
			sp = outbound.Spec{Action: outbound.ActBcc, Bcc: []string{fmt.Sprintf("audit%d@example.test", i)}, Conditions: []outbound.Condition{c(outbound.FieldAttachText, outbound.OpContains, fmt.Sprintf("設計図%d", i))}}
		case 7:
			sp = outbound.Spec{Action: outbound.ActBlock, Conditions: []outbound.Condition{c(outbound.FieldSize, outbound.OpGE, fmt.Sprintf("%dM", 50+i))}}
		}
		addRule(b, n, fmt.Sprintf("rule %d", i), "", "", sp)
	}
	line := "Quarterly figures for the bench, nothing secret in this line at all.\n"
	data := []byte(strings.Repeat(line, 10240/len(line)))
	from := "alice@example.test"
	msg := func(subject string) string {
		return withAttachments(from, "user@dest.test", subject, "Hello, the figures are attached.", attachment{"figures.txt", "text/plain; charset=utf-8", data})
	}
	plain, zipped := msg("Quarterly figures"), msg("Quarterly figures [ZIP-BENCH]")
	if err := sendOut(b, n, from, []string{"user@dest.test"}, plain); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := plain
				if i%10 == 0 {
					m = zipped
				}
				if err := sendOut(b, n, from, []string{"user@dest.test"}, m); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
