package store

// RefusedUnknownDetail is the detail of the "rejected" tracking event that
// records a recipient of a served domain refused at RCPT as an unknown
// user. Tracking keeps each such recipient; reports count them under one
// bucket per tenant, domain and day whose Address is UnknownRecipients,
// because the sender chooses these addresses and a dictionary attack would
// otherwise add a report row per guess.
const RefusedUnknownDetail = "refused at RCPT: 550 5.1.1 User unknown"

// UnknownRecipients is the ReportRow.Address of a domain's refused unknown
// recipients in a report split by address.
const UnknownRecipients = ""
