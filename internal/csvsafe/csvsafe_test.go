package csvsafe

import "testing"

func TestCell(t *testing.T) {
	cases := map[string]string{
		"":                            "",
		"alice@example.test":          "alice@example.test",
		"=1+2@example.test":           "'=1+2@example.test",
		"+81 3 1234":                  "'+81 3 1234",
		"-2+3":                        "'-2+3",
		"@SUM(A1:A2)":                 "'@SUM(A1:A2)",
		"\t=cmd":                      "'\t=cmd",
		"\r=cmd":                      "'\r=cmd",
		"\n=cmd":                      "'\n=cmd",
		"\x00=cmd":                    "'\x00=cmd",
		"a=1":                         "a=1",
		"山田 花子":                       "山田 花子",
		`=HYPERLINK("http://x","y")`:  `'=HYPERLINK("http://x","y")`,
		"'=already quoted stays text": "'=already quoted stays text",
	}
	for in, want := range cases {
		if got := Cell(in); got != want {
			t.Errorf("Cell(%q) = %q, want %q", in, got, want)
		}
	}
	rec := Cells([]string{"=a", "b"})
	if rec[0] != "'=a" || rec[1] != "b" {
		t.Errorf("Cells: %q", rec)
	}
}
