package clamdtest

import "strings"

// Signature names written to the test database. clamd reports signatures
// from unofficial databases with ".UNOFFICIAL" appended.
const (
	// SigEICARHash matches a file that is exactly the EICAR test string
	// (an .hdb MD5 signature).
	SigEICARHash = "Mailgate.Test.EICAR.Hash"
	// SigEICARBody matches the EICAR test string anywhere in any scanned
	// object (an .ndb body signature), so it also fires when the string is
	// embedded in a larger MIME part or file.
	SigEICARBody = "Mailgate.Test.EICAR.Body"
	// SigClamExe matches clam.exe from Debian's clamav-testfiles (.hdb),
	// which the package ships inside zip, 7z, tar.gz, mail and more.
	SigClamExe = "Mailgate.Test.ClamExe"
)

// EICAR returns the 68-byte EICAR anti-virus test string. It is assembled
// from pieces at run time so that no source file contains it whole (which
// would make scanners flag the repository itself). Each call returns a new
// slice.
func EICAR() []byte {
	parts := []string{
		`X5O!P%@AP[4\PZX54(P^)7CC)7}$`,
		"EICAR-STANDARD-",
		"ANTIVIRUS-",
		"TEST-FILE!",
		"$H+H*",
	}
	return []byte(strings.Join(parts, ""))
}
