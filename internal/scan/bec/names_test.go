package bec

import "testing"

func TestNameMatching(t *testing.T) {
	idx := buildIndex([]Person{
		{Name: "山田 太郎", Addr: "taro.yamada@example.co.jp"},
		{Name: "Suzuki, Hanako", Addr: "hsuzuki@example.co.jp"},
		{Name: "工藤 一郎", Addr: "kudo@example.co.jp"},
		{Name: "Sales", Addr: "sales@example.co.jp"},
		{Name: "Ken", Addr: "ken@example.co.jp"},
	}, []string{"example.co.jp"})
	for _, tc := range []struct {
		display string
		want    string // directory name matched, "" for none
	}{
		{"山田 太郎", "山田 太郎"},
		{"山田太郎", "山田 太郎"},
		{"山田　太郎", "山田 太郎"},        // full-width space
		{"山田太郎様", "山田 太郎"},        // honorific suffix
		{"山田 太郎 様", "山田 太郎"},      // honorific as a word
		{"山田太郎（経理部）", "山田 太郎"},    // bracketed note
		{"代表取締役 山田 太郎", "山田 太郎"},  // title
		{"ﾔﾏﾀﾞ", ""},              // half-width kana surname only
		{"Yamada Taro", "山田 太郎"},  // romanised, from the address taro.yamada
		{"Taro Yamada", "山田 太郎"},  // either order
		{"YAMADA, Taro", "山田 太郎"}, // "Last, First"
		{"Mr. Taro Yamada", "山田 太郎"},
		{"Yamada-san Taro", "山田 太郎"},
		{"Tаro Yаmаdа", "山田 太郎"}, // Cyrillic а in the name
		{"Hanako Suzuki", "Suzuki, Hanako"},
		{"suzuki hanako", "Suzuki, Hanako"},
		{"ＳＵＺＵＫＩ　ＨＡＮＡＫＯ", "Suzuki, Hanako"}, // full-width Latin
		{"工藤 一郎", "工藤 一郎"},
		{"エ藤 ー郎", "工藤 一郎"}, // katakana drawn like the kanji
		{"山田 花子", ""},      // another person with the same surname
		{"山田", ""},         // surname alone
		{"Taro", ""},
		{"Sales", ""}, // one-word directory names are not protected
		{"Ken", ""},
		{"", ""},
	} {
		p, ok := idx.lookupName(nameTokens(tc.display))
		got := ""
		if ok {
			got = p.Name
		}
		if got != tc.want {
			t.Errorf("display name %q matched %q, want %q (tokens %q)", tc.display, got, tc.want, nameTokens(tc.display))
		}
	}
}
