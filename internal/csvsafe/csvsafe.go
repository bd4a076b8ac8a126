// Package csvsafe keeps exported CSV from being run as formulas when a
// spreadsheet opens it (CSV or formula injection, OWASP ASVS 5.3.10 and its
// successors). A text cell that begins with '=', '+', '-', '@', a tab, a
// carriage return, a line feed or NUL is prefixed with a single quote, which
// spreadsheets show as text and do not evaluate. Numeric columns are written
// with strconv and never passed through Cell, so a negative count stays a
// number. Quoting of separators and quotes is the csv package's job.
package csvsafe

// Cell returns v safe to write as a text cell.
func Cell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r', '\n', 0:
		return "'" + v
	}
	return v
}

// Cells applies Cell to every value of a record of text columns, in place,
// and returns it.
func Cells(rec []string) []string {
	for i, v := range rec {
		rec[i] = Cell(v)
	}
	return rec
}
