package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "two-factor",
		Usage: "<list|status|reset|disable|revoke|unlock|invite|rekey> [<user>] [--realm <name>] [--json] [--address <listen>]",
		Short: "Manages two-factor users of the running Caddy",
		Long: `
Lists and manages the users of the two_factor handler through the admin API
of the running Caddy (it never opens the store itself, so it works the same
with the file store and with Redis).

  list                          users with enrollment state, last use, lockout
  status  <user>                one user's state and trusted devices
  reset   <user>                forget the enrollment, recovery codes, sessions,
                                trusted devices, lockout and any temporary
                                disable: the next sign-in enrolls afresh
  disable <user> --for <dur>    exempt the user from 2FA for a while (lost
                                phone); it ends by itself (at most 90d)
  revoke  <user>                end the user's sessions and trusted devices,
                                keep the enrollment
  unlock  <user>                clear a lockout after too many failed codes
  invite  <user> [--expires <dur>]
                                make a one-time enrollment link (for
                                "enrollment invite"; default validity 72h)
  rekey                         re-encrypt every enrollment with the current
                                secret (after rotating it: see previous_secrets);
                                reports enrollments no listed secret opens

Every command takes --realm (default "default") and --json (print the admin
API's JSON answer instead of a table). Durations are like 30m, 24h or 7d.

The admin endpoint is found the way 'caddy reload' finds it: --address, or
the admin address in the config given with --config (and --adapter), else
` + caddy.DefaultAdminListen + `.

The two-factor admin API is only as reachable as Caddy's admin endpoint,
which listens on localhost by default: keep it that way (or use a Unix
socket), since whoever reaches it can reset or exempt any user.`,
		CobraFunc: twoFactorCobra,
	})
}

// twoFactorCobra adds the subcommands of "caddy two-factor" to cmd.
func twoFactorCobra(cmd *cobra.Command) {
	type sub struct {
		name, use, short string
		user             bool
		flags            func(*cobra.Command)
	}
	subs := []sub{
		{name: "list", use: "list", short: "Lists the realm's users"},
		{name: "status", use: "status <user>", short: "Shows one user's state and trusted devices", user: true},
		{name: "reset", use: "reset <user>", short: "Forgets the user's enrollment: the next sign-in enrolls afresh", user: true},
		{
			name: "disable", use: "disable <user> --for <duration>", short: "Exempts the user from 2FA for a while", user: true,
			flags: func(c *cobra.Command) {
				c.Flags().String("for", "", "How long the exemption lasts, e.g. 24h or 2d (required; at most 90d)")
			},
		},
		{name: "revoke", use: "revoke <user>", short: "Ends the user's sessions and trusted devices", user: true},
		{name: "unlock", use: "unlock <user>", short: "Clears the user's lockout", user: true},
		{
			name: "invite", use: "invite <user> [--expires <duration>]", short: "Makes a one-time enrollment link", user: true,
			flags: func(c *cobra.Command) {
				c.Flags().String("expires", "", "How long the link stays valid, e.g. 72h or 7d (default 72h; at most 30d)")
			},
		},
		{name: "rekey", use: "rekey", short: "Re-encrypts the realm's enrollments with the current secret"},
	}
	for _, s := range subs {
		c := &cobra.Command{Use: s.use, Short: s.short}
		c.Args = func(_ *cobra.Command, args []string) error {
			switch {
			case s.user && len(args) != 1:
				return fmt.Errorf("%s needs exactly one user name, e.g. caddy two-factor %s alice", s.name, s.name)
			case !s.user && len(args) != 0:
				return fmt.Errorf("%s takes no arguments (use --realm to choose a realm)", s.name)
			}
			return nil
		}
		c.Flags().String("realm", DefaultRealm, "The realm of the two_factor handler")
		c.Flags().Bool("json", false, "Print the admin API's JSON answer instead of a table")
		c.Flags().String("address", "", "Address of the administration API listener (if --config is not used)")
		c.Flags().StringP("config", "c", "", "Configuration file to read the admin address from (if --address is not used)")
		c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply (if --config is used)")
		if s.flags != nil {
			s.flags(c)
		}
		name := s.name
		c.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			return cmdTwoFactor(name, fl, c.OutOrStdout())
		})
		cmd.AddCommand(c)
	}
}

// cliOptions are the parsed flags of a two-factor command.
type cliOptions struct {
	address string // the admin endpoint
	realm   string
	json    bool
	forDur  string // disable --for
	expires string // invite --expires
}

// cmdTwoFactor runs one two-factor subcommand from its flags.
func cmdTwoFactor(action string, fl caddycmd.Flags, stdout io.Writer) (int, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("couldn't determine admin API address: %v", err)
	}
	o := cliOptions{address: addr, realm: fl.String("realm"), json: fl.Bool("json")}
	if f := fl.Lookup("for"); f != nil {
		o.forDur = f.Value.String()
	}
	if f := fl.Lookup("expires"); f != nil {
		o.expires = f.Value.String()
	}
	if err := runTwoFactor(action, fl.Args(), o, stdout); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// runTwoFactor performs action against the admin API at o.address and
// writes the answer to stdout: a table, or with o.json the API's JSON.
func runTwoFactor(action string, args []string, o cliOptions, stdout io.Writer) error {
	if o.realm == "" {
		return errors.New("--realm must not be empty")
	}
	if action == "rekey" {
		body, err := adminCall(o.address, http.MethodPost, "/two-factor/realms/"+url.PathEscape(o.realm)+"/rekey", nil)
		if err != nil {
			return err
		}
		if o.json {
			return writeRaw(stdout, body)
		}
		var res rekeyResult
		if err := json.Unmarshal(body, &res); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		return printRekey(stdout, res)
	}
	base := "/two-factor/realms/" + url.PathEscape(o.realm) + "/users"
	if action == "list" {
		body, err := adminCall(o.address, http.MethodGet, base, nil)
		if err != nil {
			return err
		}
		if o.json {
			return writeRaw(stdout, body)
		}
		var users []userSummary
		if err := json.Unmarshal(body, &users); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		return printUsers(stdout, o.realm, users)
	}

	if len(args) != 1 || args[0] == "" {
		return fmt.Errorf("%s needs exactly one user name, e.g. caddy two-factor %s alice", action, action)
	}
	user := args[0]
	uri := base + "/" + url.PathEscape(user)
	method := http.MethodPost
	var payload any
	switch action {
	case "status":
		method = http.MethodGet
	case "reset", "revoke", "unlock":
		uri += "/" + action
	case "disable":
		if o.forDur == "" {
			return errors.New("disable needs --for, how long the exemption lasts, e.g. --for 24h")
		}
		uri += "/disable"
		payload = map[string]string{"for": o.forDur}
	case "invite":
		uri += "/invite"
		if o.expires != "" {
			payload = map[string]string{"expires_in": o.expires}
		}
	default:
		return fmt.Errorf("unknown two-factor command %q", action)
	}
	body, err := adminCall(o.address, method, uri, payload)
	if err != nil {
		return err
	}
	if o.json {
		return writeRaw(stdout, body)
	}
	if action == "status" {
		var s userSummary
		if err := json.Unmarshal(body, &s); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		return printUser(stdout, o.realm, s)
	}
	var res userAction
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	return printAction(stdout, res)
}

// adminCall sends one request to the admin API and returns the answer's
// body. Its errors are for people: "cannot reach" when nothing answers,
// else the API's own message.
func adminCall(addr, method, uri string, payload any) ([]byte, error) {
	var body io.Reader
	if payload != nil {
		data, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(data)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, body)
	if err != nil {
		return nil, explainAdminError(addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %v", err)
	}
	return data, nil
}

// explainAdminError turns the errors of caddycmd.AdminAPIRequest, which
// are formatted strings, into messages for people.
func explainAdminError(addr string, err error) error {
	msg := err.Error()
	if cause, ok := strings.CutPrefix(msg, "performing request: "); ok {
		return fmt.Errorf("cannot reach Caddy's admin endpoint at %s: is Caddy running? (use --address if its admin endpoint listens elsewhere) [%s]", addr, cause)
	}
	rest, ok := strings.CutPrefix(msg, "caddy responded with error: HTTP ")
	if !ok {
		return err
	}
	codeText, body, _ := strings.Cut(rest, ": ")
	code, _ := strconv.Atoi(codeText)
	var apiErr struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &apiErr) == nil && apiErr.Error != "" {
		return errors.New(apiErr.Error)
	}
	if code == http.StatusNotFound {
		return fmt.Errorf("the admin endpoint at %s has no two-factor API: is this Caddy built with caddy-2fa? (caddy list-modules | grep two_factor)", addr)
	}
	return fmt.Errorf("admin API error: HTTP %s: %s", codeText, strings.TrimSpace(body))
}

func writeRaw(w io.Writer, body []byte) error {
	if !bytes.HasSuffix(body, []byte("\n")) {
		body = append(body, '\n')
	}
	_, err := w.Write(body)
	return err
}

// localTime prints a time in local time, to the minute; "-" if zero.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "until " + localTime(t)
}

func printUsers(w io.Writer, realm string, users []userSummary) error {
	if len(users) == 0 {
		_, err := fmt.Fprintf(w, "No users in realm %q yet.\n", realm)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tENROLLED\tRECOVERY\tLAST VERIFIED\tMETHOD\tLOCKED\tDISABLED\tSESSIONS\tDEVICES")
	for _, u := range users {
		enrolled, recovery := "no", "-"
		if u.Enrolled {
			enrolled, recovery = localTime(u.EnrolledAt), strconv.Itoa(u.RecoveryCodes)
		}
		verified, method := "never", "-"
		if !u.LastVerified.IsZero() {
			verified, method = localTime(u.LastVerified), u.LastMethod
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", cell(u.User), enrolled, recovery, verified, cell(method),
			until(u.LockedUntil), until(u.DisabledUntil), u.Sessions, u.TrustedDevices)
	}
	return tw.Flush()
}

func printUser(w io.Writer, realm string, u userSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "User:\t%s\n", cell(u.User))
	fmt.Fprintf(tw, "Realm:\t%s\n", cell(realm))
	if u.Enrolled {
		fmt.Fprintf(tw, "Enrolled:\tsince %s (%s left)\n", localTime(u.EnrolledAt), plural(u.RecoveryCodes, "recovery code"))
	} else {
		fmt.Fprintf(tw, "Enrolled:\tno\n")
	}
	fmt.Fprintf(tw, "First seen:\t%s\n", localTime(u.FirstSeen))
	if u.LastVerified.IsZero() {
		fmt.Fprintf(tw, "Last verified:\tnever\n")
	} else {
		fmt.Fprintf(tw, "Last verified:\t%s (%s)\n", localTime(u.LastVerified), cell(u.LastMethod))
	}
	switch {
	case !u.LockedUntil.IsZero():
		fmt.Fprintf(tw, "Locked:\tuntil %s (%s)\n", localTime(u.LockedUntil), plural(u.Failures, "failed attempt"))
	case u.Failures > 0:
		fmt.Fprintf(tw, "Locked:\tno (%s recently)\n", plural(u.Failures, "failed attempt"))
	default:
		fmt.Fprintf(tw, "Locked:\tno\n")
	}
	if u.DisabledUntil.IsZero() {
		fmt.Fprintf(tw, "Disabled:\tno\n")
	} else {
		fmt.Fprintf(tw, "Disabled:\tuntil %s (2FA not required)\n", localTime(u.DisabledUntil))
	}
	fmt.Fprintf(tw, "Sessions:\t%d\n", u.Sessions)
	fmt.Fprintf(tw, "Trusted devices:\t%d\n", u.TrustedDevices)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(u.Devices) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRUSTED SINCE\tLAST USED\tEXPIRES\tCLIENT IP\tUSER AGENT")
	for _, d := range u.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", localTime(d.Created), localTime(d.LastUsed), localTime(d.Expires), cell(d.ClientIP), cell(truncate(d.UserAgent, 60)))
	}
	return tw.Flush()
}

func printAction(w io.Writer, res userAction) error {
	who := fmt.Sprintf("%q (realm %q)", res.User, res.Realm)
	var err error
	switch res.Action {
	case "reset":
		_, err = fmt.Fprintf(w, "Reset %s: the next sign-in enrolls afresh.\n", who)
	case "disable":
		_, err = fmt.Fprintf(w, "Two-factor disabled for %s until %s; it turns back on by itself.\n", who, localTime(res.DisabledUntil))
	case "revoke":
		var ns, nd int
		if res.SessionsRevoked != nil {
			ns = *res.SessionsRevoked
		}
		if res.DevicesRevoked != nil {
			nd = *res.DevicesRevoked
		}
		_, err = fmt.Fprintf(w, "Revoked %s and %s of %s.\n", plural(ns, "session"), plural(nd, "trusted device"), who)
	case "unlock":
		if res.WasLocked != nil && *res.WasLocked {
			_, err = fmt.Fprintf(w, "Unlocked %s.\n", who)
		} else {
			_, err = fmt.Fprintf(w, "Cleared the failed attempts of %s (it was not locked).\n", who)
		}
	case "invite":
		_, err = fmt.Fprintf(w, "One-time enrollment link for %s, valid until %s:\n\n    %s\n\nPrefix it with the site's address (https://<your site>%s) and send it to the user only.\n",
			who, localTime(res.Expires), res.URL, res.URL)
	default:
		_, err = fmt.Fprintf(w, "%s: %s\n", res.Action, who)
	}
	return err
}

func printRekey(w io.Writer, res rekeyResult) error {
	if _, err := fmt.Fprintf(w, "Realm %q: re-encrypted %s with the current secret; %s already were.\n",
		res.Realm, plural(res.Rekeyed, "enrollment"), strconv.Itoa(res.AlreadyCurrent)); err != nil {
		return err
	}
	if res.Unreadable == 0 {
		return nil
	}
	names := make([]string, len(res.UnreadableUsers))
	for i, u := range res.UnreadableUsers {
		names[i] = cell(u)
	}
	_, err := fmt.Fprintf(w, "%s no listed secret opens (kept as they are; list their secret in previous_secrets, or reset these users): %s\n",
		plural(res.Unreadable, "enrollment"), strings.Join(names, ", "))
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// cell makes a value safe for one table cell: a user name is chosen by
// whoever signs in and must not break the table or the terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
