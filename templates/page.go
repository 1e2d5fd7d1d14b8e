// Package templates renders the two_factor gate's pages: enrollment,
// recovery codes, challenge, lockout, logout, settings and errors. The
// pages are embedded; an operator may override any of them from a
// directory.
//
// All page text comes from message catalogs, one JSON file per language
// (locales/en.json, locales/ja.json); the language follows the browser's
// Accept-Language unless configuration fixes it. Adding a language is
// adding one file; see docs/i18n.md.
//
// The package imports nothing from Caddy.
package templates

import (
	"html/template"
	"time"
)

// Page names accepted by Set.Render. Each is a file <name>.html.
const (
	PageEnroll    = "enroll"         // show QR, link and secret; ask for the first code
	PageRecovery  = "recovery_codes" // show the recovery codes once, with a download
	PageChallenge = "challenge"      // ask for a code (TOTP or recovery)
	PageLocked    = "locked"         // too many failures: when to retry
	PageLogout    = "logout"         // confirm signing out (GET), with a POST form
	PageLoggedOut = "logged_out"     // signed out
	PageError     = "error"          // 403 no identity, 503 store unavailable, 400/403 bad form
	PageSettings  = "settings"       // the user's own settings: status, devices, codes, turn off
)

// Problem names a reason the previous submission was refused. The page
// explains it in plain words and says what to do next.
type Problem string

// Problems shown on the enrollment and challenge pages.
const (
	ProblemNone        Problem = ""
	ProblemWrongCode   Problem = "wrong_code"   // code did not match: check the phone's clock, try a recovery code
	ProblemUsedCode    Problem = "used_code"    // code already used: wait for the next one
	ProblemBadFormat   Problem = "bad_format"   // not 6 digits nor a recovery code
	ProblemFormExpired Problem = "form_expired" // CSRF token missing/expired: the page was reloaded, try again
	ProblemEnrollGone  Problem = "enroll_gone"  // the setup secret expired: scan the new QR code
	// ProblemStartedOver: this browser's setup was started over in another
	// browser; its key no longer works (if that was not the user, someone
	// else knows the password).
	ProblemStartedOver Problem = "started_over"
	// ProblemStartOverLimit: setup was started over too often; finish it
	// where it is in progress, or try again later.
	ProblemStartOverLimit Problem = "start_over_limit"
)

// Data is what every page template receives. Fields that do not concern a
// page are left zero.
type Data struct {
	// Title is the product name shown in the page header and <title>
	// (the `title` option). Empty shows the catalog's "layout.product"
	// ("Two-factor authentication", "二要素認証").
	Title string
	// Lang is the language to render in: one of Set.Languages, as chosen
	// by Set.Match from the browser's Accept-Language or by Set.Language
	// from configuration. Empty or unknown means English.
	Lang string
	// Issuer is the label authenticator apps show for this site.
	Issuer string
	// User is the signed-in user name (may be empty on error pages).
	User string
	// Prefix is the gate's path prefix (e.g. "/.2fa"); forms post to
	// Prefix + "/enroll", "/challenge", "/logout".
	Prefix string
	// CSRFToken goes into a hidden input named "csrf_token" in every form.
	CSRFToken string
	// Return is the validated same-host relative URL to go back to; forms
	// carry it in a hidden input named "rd". Empty means "/".
	Return string
	// Problem is why the previous submission was refused.
	Problem Problem
	// Now is the server time the page was rendered at.
	Now time.Time

	// Enroll page.
	Enroll *Enroll
	// Recovery codes page.
	Recovery *Recovery
	// Challenge page.
	Challenge *Challenge
	// Locked page.
	Locked *Locked
	// Error page.
	Error *Error
	// Settings page.
	Settings *Settings
}

// Settings is the settings page's data (Prefix + "/settings"). Its forms
// post to Prefix + "/settings" with a hidden field "action":
// remove_device (with "device", a TrustedDevice.ID), remove_all_devices,
// sign_out_others, and, each with a fresh authenticator code in "code",
// new_recovery_codes, replace_authenticator and turn_off.
type Settings struct {
	// Enrolled says two-factor authentication is on for the user. When it
	// is false the page only offers to set it up (a link to
	// Prefix + "/enroll") and the other fields are zero.
	Enrolled bool
	// Invite says setting up needs an invitation link from an
	// administrator (enrollment invite), so the page says so instead of
	// linking to Prefix + "/enroll".
	Invite bool
	// Since is when the user's authenticator app was set up.
	Since time.Time
	// Method is how this browser's session was verified: "totp",
	// "recovery" or "trusted_device"; Verified is when.
	Method   string
	Verified time.Time
	// RecoveryCodes says recovery codes are enabled (otherwise the page
	// neither counts them nor offers new ones). RecoveryLeft of
	// RecoveryIssued codes are still unused.
	RecoveryCodes                bool
	RecoveryLeft, RecoveryIssued int
	// TrustDevice is how long "remember this device" lasts; zero means
	// the option is turned off.
	TrustDevice time.Duration
	// Devices are the user's trusted browsers, this one first.
	Devices []TrustedDevice
	// OtherSessions counts the user's verified sessions in other
	// browsers.
	OtherSessions int
	// CanTurnOff says policy lets the user turn two-factor
	// authentication off; otherwise the form is not shown.
	CanTurnOff bool

	// Done confirms the action just carried out: "device_removed",
	// "this_device_removed", "devices_removed" or "signed_out_others";
	// Count is how many devices or sessions it ended.
	Done  string
	Count int
	// Refused explains an action that was not carried out for a reason
	// other than the code: "form_expired" (CSRF token missing or stale:
	// nothing changed), "no_device" (not one of the user's trusted
	// devices, perhaps removed already), "turn_off_required" (policy
	// requires two-factor authentication for the user),
	// "recovery_disabled" (recovery codes are turned off).
	Refused string
	// Form names the form Data.Problem belongs to ("new_recovery_codes",
	// "replace_authenticator" or "turn_off"): the alert is shown in that
	// form, which is open and has its code field focused.
	Form string
	// RecoveryCode says the refused code was a recovery code: these
	// forms need a code from the authenticator app.
	RecoveryCode bool
}

// TrustedDevice is one trusted browser on the settings page.
type TrustedDevice struct {
	// ID identifies the device in the remove_device form's "device"
	// field.
	ID string
	// Browser and OS are read from the browser's User-Agent when it was
	// trusted ("Chrome", "Windows"); each is empty when not recognized
	// (the page then says "Unknown browser" in the page's language).
	Browser, OS string
	// Current marks the browser the page is shown in.
	Current bool
	// Created is when it was trusted, LastUsed when it last skipped the
	// code, Expires when the trust ends.
	Created, LastUsed, Expires time.Time
	// IP is the address it was trusted from.
	IP string
}

// Enroll is the enrollment page's data.
type Enroll struct {
	// URI is the otpauth://totp/... key URI, shown as a link.
	URI template.URL
	// QR is a data:image/png;base64,... URL of a QR code of exactly URI.
	QR template.URL
	// SecretGroups is the base32 secret in groups of four characters.
	SecretGroups []string
	// Digits and Period are what the app will show (6, 30).
	Digits, Period int
	// Expires is when this unconfirmed secret stops being accepted.
	Expires time.Time
	// Grace, when not nil, offers "remind me later" (a POST form to
	// Prefix + "/later"): the user must enroll, but not yet.
	Grace *Grace
	// Elsewhere says the user's setup is in progress in another browser:
	// its key is shown only there, so this page shows no key, QR code or
	// code form (URI, QR and SecretGroups are empty) and explains.
	Elsewhere bool
	// StartOver, with Elsewhere, offers "start over here": a POST form to
	// Prefix + "/enroll" with action "start_over", which makes a new key
	// for this browser and stops the other browser's from working. Not
	// offered where enrollment needs an invite (a new invite link is the
	// way to start over there).
	StartOver bool
}

// Grace is an enrollment grace period still running.
type Grace struct {
	// Until is when the grace period ends.
	Until time.Time
	// Left is Until minus now.
	Left time.Duration
}

// Recovery is the recovery codes page's data.
type Recovery struct {
	// Codes are the new recovery codes, "xxxxx-xxxxx", shown only now.
	Codes []string
	// Download is a data:text/plain URL of the same codes, offered as a
	// file download.
	Download template.URL
	// Filename is the suggested download file name.
	Filename string
	// Continue is where the "Continue" link goes (same as Data.Return).
	Continue string
}

// Challenge is the challenge page's data.
type Challenge struct {
	// TrustDevice is the "remember this device" lifetime; zero hides the
	// trust_device checkbox.
	TrustDevice time.Duration
	// RecoveryCodes says recovery codes are enabled (the page mentions
	// them as a way in when the phone is lost).
	RecoveryCodes bool
}

// Locked is the lockout page's data.
type Locked struct {
	// Until is when attempts are accepted again.
	Until time.Time
	// RetryIn is Until minus Now, rounded up to whole minutes, at least 1.
	RetryIn time.Duration
}

// Error is the error page's data.
type Error struct {
	// Status is the HTTP status (403, 503, 400...).
	Status int
	// Kind selects the explanation: "no_identity" (the gate found no
	// signed-in user: contact the admin), "unavailable" (the gate cannot
	// reach its store: try again in a minute), "bad_request" (the form
	// could not be read: go back and try again), "forbidden" (a
	// cross-site or otherwise refused request), "method" (method not
	// allowed on this gate page), "not_found" (no gate page at this path),
	// "sign_in_first" (app_login: no application session yet),
	// "unknown_session" (app_login: an application session the gate
	// never saw created, with unknown_session deny), "name_too_long" (a
	// user name over the gate's limit), "name_conflict" (the user is
	// enrolled under several spellings of the name: the admin must reset),
	// "ambiguous_request" (app_login: the request could be read two ways,
	// e.g. duplicate session cookies or a login form naming the user twice;
	// it was not forwarded).
	Kind string
}
