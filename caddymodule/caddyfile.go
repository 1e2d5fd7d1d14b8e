package caddymodule

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/text/language"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/templates"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("two_factor", parseCaddyfile)
	// After forward_auth (and so after basic_auth), before respond,
	// reverse_proxy, php_fastcgi and file_server: the user is known, the
	// application has not been reached yet. No global `order` needed.
	httpcaddyfile.RegisterDirectiveOrder("two_factor", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var th Handler
	err := th.UnmarshalCaddyfile(h.Dispenser)
	return &th, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	two_factor [<matcher>] {
//	    user           <placeholder>        # identity source A, default {http.auth.user.id}
//	    app_login {                         # identity source B, instead of user
//	        path           <path or glob>...  # the login form's POST targets (may repeat)
//	        username_field <field>          # form field or JSON key with the user name
//	        session_cookie <name or glob>...  # the app's session cookies (may repeat)
//	        success        redirect|status <code>...|location <glob>|cookie <name>  # may repeat; default redirect
//	        logout_path    <path or glob>   # optional
//	        unknown_session relogin|deny    # default relogin
//	    }
//	    anonymous      deny|allow           # default deny
//	    require        all|enrolled|users <u...>|groups <g...>  # default all
//	    groups         <placeholder>        # the user's groups, comma-separated
//	    exempt         users <u...>|groups <g...>  # globs; may appear once for each
//	    enrollment     open|invite          # default open
//	    grace          <duration>           # default 0: "remind me later" until then
//	    issuer         <name>               # default: the request's host
//	    realm          <name>               # default "default"
//	    secret         <value>              # >= 32 bytes; default: generated, kept in Caddy's data dir
//	    previous_secrets <value>...         # old secrets still accepted while rotating; needs secret
//	    store          file [<path>]        # default: a file in Caddy's data dir
//	    store          redis [<url>...] [{  # several Caddy instances sharing one Redis
//	        addrs        <host:port>...
//	        master_name  <name>             # Sentinel
//	        username     <user>
//	        password     <password>         # e.g. {env.REDIS_PASSWORD}
//	        db           <n>
//	        tls
//	        key_prefix   <prefix>           # default caddy2fa
//	        pool_size    <n>
//	        dial_timeout <duration>
//	        read_timeout <duration>
//	    }]
//	    session_ttl    <duration>           # default 12h
//	    idle_timeout   <duration>           # default 0 (none)
//	    trust_device   <duration>           # default 30d; 0 disables
//	    skew           <steps>              # default 1, at most 3
//	    max_attempts   <n> <window> <lockout>  # default 5 5m 15m
//	    recovery_codes <n>                  # default 10; 0 disables
//	    otp_header     <name>               # default off
//	    path_prefix    <path>               # default /.2fa
//	    templates      <dir>                # default: embedded pages
//	    title          <text>               # default "Two-factor authentication"
//	}
//
// Every option may appear once, except app_login's path, session_cookie
// and success (one line per kind).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("two_factor takes no arguments on its first line, got %q (options go in a block)", d.Val())
	}
	seen := map[string]bool{}
	// An unknown lang is only an error if the templates option (which may
	// come later in the block) adds no catalogs; the error is made here so
	// that it names the lang line.
	var langErr error
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("%s: specified more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "user", "issuer", "realm", "secret", "otp_header", "path_prefix", "templates", "title", "lang", "logo":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			switch opt {
			case "user":
				h.User = val
			case "issuer":
				h.Issuer = val
			case "realm":
				h.Realm = val
			case "secret":
				h.Secret = val
			case "otp_header":
				if !validHeaderName(val) {
					return d.Errf("otp_header: %q is not a valid header name", val)
				}
				h.OTPHeader = val
			case "path_prefix":
				if err := validatePathPrefix(val); err != nil {
					return d.Errf("path_prefix: %v", err)
				}
				h.PathPrefix = val
			case "templates":
				h.Templates = val
			case "title":
				h.Title = val
			case "logo":
				if err := templates.CheckLogo(val); err != nil {
					return d.Errf("%v", err)
				}
				h.Logo = val
			case "lang":
				tag, err := language.Parse(val)
				if err != nil {
					return d.Errf("lang: %q is not a language tag such as en or ja", val)
				}
				if _, ok := templates.EmbeddedLanguage(val); !ok {
					langErr = d.Errf("lang: no catalog for %q (built in: %s; a templates directory can add one in locales/<tag>.json)", val, strings.Join(templates.EmbeddedLanguages(), ", "))
				}
				h.Lang = tag.String()
			}

		case "accent":
			args := d.RemainingArgs()
			if len(args) == 0 {
				// An unquoted #1756b8 is a comment to the Caddyfile lexer.
				return d.Errf(`accent: expected a colour such as "#1756b8", in quotes (# starts a comment in a Caddyfile)`)
			}
			if len(args) > 1 {
				return d.Errf("accent: expected exactly one value, got %d", len(args))
			}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("accent: takes no block")
			}
			if err := templates.CheckAccent(args[0]); err != nil {
				return d.Errf("%v", err)
			}
			h.Accent = args[0]

		case "anonymous":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			if val != "deny" && val != "allow" {
				return d.Errf("anonymous: must be deny or allow, got %q", val)
			}
			h.Anonymous = val

		case "store":
			sc, err := parseStore(d)
			if err != nil {
				return err
			}
			h.Store = sc

		case "session_ttl", "idle_timeout", "trust_device":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: invalid duration %q: %v", opt, val, err)
			}
			switch {
			case dur < 0:
				return d.Errf("%s: must not be negative, got %q", opt, val)
			case opt == "session_ttl" && dur < time.Minute:
				return d.Errf("session_ttl: must be at least 1m, got %q", val)
			case opt == "idle_timeout" && dur > 0 && dur < time.Minute:
				return d.Errf("idle_timeout: must be 0 or at least 1m, got %q", val)
			}
			switch opt {
			case "session_ttl":
				h.SessionTTL = caddy.Duration(dur)
			case "idle_timeout":
				h.IdleTimeout = caddy.Duration(dur)
			case "trust_device":
				cd := caddy.Duration(dur)
				h.TrustDevice = &cd
			}

		case "skew":
			n, err := intArg(d, opt, 0, maxSkew)
			if err != nil {
				return err
			}
			h.Skew = &n

		case "recovery_codes":
			n, err := intArg(d, opt, 0, 100)
			if err != nil {
				return err
			}
			h.RecoveryCodes = &n

		case "max_attempts":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.Errf("max_attempts: expected <n> <window> <lockout>, e.g. max_attempts 5 5m 15m; got %d arguments", len(args))
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 || n > 100 {
				return d.Errf("max_attempts: count must be a whole number from 1 to 100, got %q", args[0])
			}
			window, err := caddy.ParseDuration(args[1])
			if err != nil || window <= 0 {
				return d.Errf("max_attempts: invalid window %q", args[1])
			}
			lockout, err := caddy.ParseDuration(args[2])
			if err != nil || lockout <= 0 {
				return d.Errf("max_attempts: invalid lockout %q", args[2])
			}
			h.MaxAttempts = &AttemptLimit{Max: n, Window: caddy.Duration(window), Lockout: caddy.Duration(lockout)}

		case "app_login":
			al, err := parseAppLogin(d)
			if err != nil {
				return err
			}
			h.AppLogin = al

		case "require":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("require: expected all, enrolled, users <name...> or groups <name...>")
			}
			q := &Requirement{Mode: args[0]}
			switch args[0] {
			case "users":
				q.Users = args[1:]
			case "groups":
				q.Groups = args[1:]
			default:
				if len(args) > 1 {
					return d.Errf("require %s: takes no names, got %q", args[0], args[1])
				}
			}
			if err := q.validate(); err != nil {
				return d.Errf("%v", err)
			}
			h.Require = q

		case "groups":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			h.Groups = val

		case "exempt":
			// exempt may appear twice: once for users, once for groups.
			delete(seen, "exempt")
			args := d.RemainingArgs()
			if len(args) < 2 || (args[0] != "users" && args[0] != "groups") {
				return d.Errf("exempt: expected users <name...> or groups <name...>")
			}
			if h.Exempt == nil {
				h.Exempt = &Exemption{}
			}
			list := &h.Exempt.Users
			if args[0] == "groups" {
				list = &h.Exempt.Groups
			}
			if len(*list) > 0 {
				return d.Errf("exempt %s: specified more than once", args[0])
			}
			if err := validGlobs("exempt "+args[0], args[1:]); err != nil {
				return d.Errf("%v", err)
			}
			*list = args[1:]

		case "enrollment":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			if val != "open" && val != "invite" {
				return d.Errf("enrollment: must be open or invite, got %q", val)
			}
			h.Enrollment = val

		case "previous_secrets":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("previous_secrets: expected at least one old secret")
			}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("previous_secrets: takes no block")
			}
			for i, v := range args {
				// Lengths of placeholders are checked at load.
				if !strings.Contains(v, "{") && len(v) < keyring.MinSecretLen {
					return d.Errf("previous_secrets: value %d must be at least %d bytes, got %d", i+1, keyring.MinSecretLen, len(v))
				}
			}
			h.PreviousSecrets = args

		case "grace":
			val, err := oneArg(d, opt)
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur < 0 {
				return d.Errf("grace: invalid duration %q", val)
			}
			h.Grace = caddy.Duration(dur)

		default:
			return d.Errf("unrecognized two_factor option %q", opt)
		}
	}
	if langErr != nil && h.Templates == "" {
		return langErr
	}
	if seen["previous_secrets"] && !seen["secret"] {
		return d.Errf("previous_secrets: needs secret (the new value) in the same block")
	}
	if h.AppLogin != nil && seen["user"] {
		return d.Errf("app_login: cannot be combined with user (the user comes from the application's login)")
	}
	if h.AppLogin != nil && seen["anonymous"] {
		return d.Errf("app_login: cannot be combined with anonymous (requests without the application's cookie pass anyway)")
	}
	return nil
}

// parseAppLogin reads the app_login block. session_cookie, path and
// success may repeat (the first two take several values on one line);
// every other option appears once.
func parseAppLogin(d *caddyfile.Dispenser) (*AppLogin, error) {
	if d.NextArg() {
		return nil, d.Errf("app_login: takes a block, not %q", d.Val())
	}
	al := &AppLogin{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "path", "session_cookie":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return nil, d.Errf("app_login: %s: expected at least one value", opt)
			}
			if d.NextBlock(d.Nesting()) {
				return nil, d.Errf("app_login: %s: takes no block", opt)
			}
			if opt == "path" {
				al.Paths = append(al.Paths, vals...)
			} else {
				al.SessionCookies = append(al.SessionCookies, vals...)
			}
			continue
		case "success":
			if al.Success == nil {
				al.Success = &LoginSuccess{}
			}
			if err := parseLoginSuccess(d, al.Success, seen); err != nil {
				return nil, err
			}
			continue
		}
		if seen[opt] {
			return nil, d.Errf("app_login: %s specified more than once", opt)
		}
		seen[opt] = true
		val, err := oneArg(d, "app_login: "+opt)
		if err != nil {
			return nil, err
		}
		switch opt {
		case "username_field":
			al.UsernameField = val
		case "logout_path":
			al.LogoutPath = val
		case "unknown_session":
			al.UnknownSession = val
		default:
			return nil, d.Errf("app_login: unrecognized option %q", opt)
		}
	}
	if err := al.validate(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return al, nil
}

// parseLoginSuccess reads one `success <kind> [args]` line into s. Each
// kind may be given once.
func parseLoginSuccess(d *caddyfile.Dispenser, s *LoginSuccess, seen map[string]bool) error {
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		return d.Errf("app_login: success: takes no block")
	}
	if len(args) == 0 {
		return d.Errf("app_login: success: expected redirect, status <code>..., location <glob> or cookie <name>")
	}
	kind := args[0]
	if seen["success "+kind] {
		return d.Errf("app_login: success %s specified more than once", kind)
	}
	seen["success "+kind] = true
	switch kind {
	case "redirect":
		if len(args) != 1 {
			return d.Errf("app_login: success redirect: takes no value")
		}
		s.Redirect = true
	case "status":
		if len(args) < 2 {
			return d.Errf("app_login: success status: expected at least one status code")
		}
		for _, a := range args[1:] {
			n, err := strconv.Atoi(a)
			if err != nil || n < 100 || n > 599 {
				return d.Errf("app_login: success status: %q is not an HTTP status code", a)
			}
			s.Status = append(s.Status, n)
		}
	case "location", "cookie":
		if len(args) != 2 {
			return d.Errf("app_login: success %s: expected exactly one value, got %d", kind, len(args)-1)
		}
		if kind == "location" {
			s.Location = args[1]
		} else {
			s.Cookie = args[1]
		}
	default:
		return d.Errf("app_login: success: unknown kind %q (want redirect, status, location or cookie)", kind)
	}
	return nil
}

// parseStore reads `store file [<path>]` or `store redis [<url>...] [{ ... }]`.
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("store: expected a backend (file [<path>] or redis <url>...)")
	}
	switch args[0] {
	case "file":
		if len(args) > 2 {
			return nil, d.Errf("store file: takes at most one path, got %d arguments", len(args)-1)
		}
		sc := &StoreConfig{Backend: "file"}
		if len(args) == 2 {
			sc.Path = args[1]
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Errf("store file: takes no block")
		}
		return sc, nil
	case "redis":
		sc := &StoreConfig{Backend: "redis", URLs: args[1:]}
		seen := map[string]bool{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if seen[opt] {
				return nil, d.Errf("store redis: %s specified more than once", opt)
			}
			seen[opt] = true
			switch opt {
			case "addrs":
				sc.Addrs = d.RemainingArgs()
				if len(sc.Addrs) == 0 {
					return nil, d.Errf("store redis: addrs needs at least one host:port")
				}
			case "master_name", "username", "password", "key_prefix":
				val, err := oneArg(d, "store redis: "+opt)
				if err != nil {
					return nil, err
				}
				switch opt {
				case "master_name":
					sc.MasterName = val
				case "username":
					sc.Username = val
				case "password":
					sc.Password = val
				case "key_prefix":
					sc.KeyPrefix = val
				}
			case "db", "pool_size":
				n, err := intArg(d, "store redis: "+opt, 0, 1<<16)
				if err != nil {
					return nil, err
				}
				if opt == "db" {
					sc.DB = n
				} else {
					sc.PoolSize = n
				}
			case "tls":
				if d.NextArg() {
					return nil, d.Errf("store redis: tls takes no value, got %q", d.Val())
				}
				sc.TLS = true
			case "dial_timeout", "read_timeout":
				val, err := oneArg(d, "store redis: "+opt)
				if err != nil {
					return nil, err
				}
				dur, err := caddy.ParseDuration(val)
				if err != nil || dur <= 0 {
					return nil, d.Errf("store redis: %s: invalid duration %q", opt, val)
				}
				if opt == "dial_timeout" {
					sc.DialTimeout = caddy.Duration(dur)
				} else {
					sc.ReadTimeout = caddy.Duration(dur)
				}
			default:
				return nil, d.Errf("store redis: unrecognized option %q", opt)
			}
		}
		if len(sc.URLs) == 0 && len(sc.Addrs) == 0 {
			return nil, d.Errf("store redis: needs a URL (store redis redis://host:6379) or addrs in a block")
		}
		if len(sc.URLs) > 0 && len(sc.Addrs) > 0 {
			return nil, d.Errf("store redis: give URLs or addrs, not both")
		}
		return sc, nil
	}
	return nil, d.Errf("store: unknown backend %q (known: file, redis)", args[0])
}

// oneArg reads exactly one argument for opt.
func oneArg(d *caddyfile.Dispenser, opt string) (string, error) {
	args := d.RemainingArgs()
	if len(args) != 1 {
		return "", d.Errf("%s: expected exactly one value, got %d", opt, len(args))
	}
	if d.NextBlock(d.Nesting()) {
		return "", d.Errf("%s: takes no block", opt)
	}
	return args[0], nil
}

// intArg reads one whole number in [lo, hi] for opt.
func intArg(d *caddyfile.Dispenser, opt string, lo, hi int) (int, error) {
	val, err := oneArg(d, opt)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < lo || n > hi {
		return 0, d.Errf("%s: must be a whole number from %d to %d, got %q", opt, lo, hi, val)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
