package caddymodule

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//	        db           <n>                # 0 to 65536
//	        tls
//	        key_prefix   <prefix>           # default caddy2fa
//	        pool_size    <n>                # 0 to 65536; default go-redis's
//	        dial_timeout <duration>
//	        read_timeout <duration>
//	    }]
//	    session_ttl    <duration>           # default 12h; at least 1m
//	    idle_timeout   <duration>           # default 0 (none); else at least 1m
//	    trust_device   <duration>           # default 30d; 0 disables
//	    skew           <steps>              # default 1, at most 3
//	    max_attempts   <n> <window> <lockout>  # default 5 5m 15m; n from 1 to 100
//	    recovery_codes <n>                  # default 10; 0 disables; at most 100
//	    otp_header     <name>               # default off
//	    path_prefix    <path>               # default /.2fa
//	    templates      <dir>                # default: embedded pages
//	    title          <text>               # default "Two-factor authentication"
//	    logo           <https URL>|<path>|file:<file>  # default none
//	    accent         "<#rgb or #rrggbb>"  # quoted; default the stylesheet's blue
//	    lang           <tag>                # default: the browser's Accept-Language
//	}
//
// Every option may appear once, except app_login's path, session_cookie
// and success (one line per kind).
//
// The parser only reads the syntax (an option's arguments, a number or
// duration that does not parse); the rules on the values are Validate's,
// the same for a JSON config. Validate runs once the block is read, and
// its error is reported at the line of the option it names.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	directive := d.Token()
	if d.NextArg() {
		return d.Errf("two_factor takes no arguments on its first line, got %q (options go in a block)", d.Val())
	}
	// lines holds each option's first token, where Validate's error about
	// the option is reported.
	lines := map[string]caddyfile.Token{}
	for d.NextBlock(0) {
		opt := d.Val()
		if _, seen := lines[opt]; seen && opt != "exempt" {
			return d.Errf("%s: specified more than once", opt)
		}
		if _, seen := lines[opt]; !seen {
			lines[opt] = d.Token()
		}
		switch opt {
		case "user", "issuer", "realm", "secret", "otp_header", "path_prefix", "templates", "title", "lang", "logo",
			"anonymous", "groups", "enrollment":
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
				h.OTPHeader = val
			case "path_prefix":
				h.PathPrefix = val
			case "templates":
				h.Templates = val
			case "title":
				h.Title = val
			case "lang":
				h.Lang = val
			case "logo":
				h.Logo = val
			case "anonymous":
				h.Anonymous = val
			case "groups":
				h.Groups = val
			case "enrollment":
				h.Enrollment = val
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
			h.Accent = args[0]

		case "store":
			sc, err := parseStore(d)
			if err != nil {
				return err
			}
			h.Store = sc

		case "session_ttl", "idle_timeout", "trust_device", "grace":
			dur, err := durationArg(d, opt)
			if err != nil {
				return err
			}
			switch opt {
			case "session_ttl":
				h.SessionTTL = dur
			case "idle_timeout":
				h.IdleTimeout = dur
			case "trust_device":
				h.TrustDevice = &dur
			case "grace":
				h.Grace = dur
			}

		case "skew", "recovery_codes":
			n, err := intArg(d, opt)
			if err != nil {
				return err
			}
			if opt == "skew" {
				h.Skew = &n
			} else {
				h.RecoveryCodes = &n
			}

		case "max_attempts":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.Errf("max_attempts: expected <n> <window> <lockout>, e.g. max_attempts 5 5m 15m; got %d arguments", len(args))
			}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("max_attempts: takes no block")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return d.Errf("max_attempts: count must be a whole number, got %q", args[0])
			}
			window, err := caddy.ParseDuration(args[1])
			if err != nil {
				return d.Errf("max_attempts: invalid window %q: %v", args[1], err)
			}
			lockout, err := caddy.ParseDuration(args[2])
			if err != nil {
				return d.Errf("max_attempts: invalid lockout %q: %v", args[2], err)
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
			if d.NextBlock(d.Nesting()) {
				return d.Errf("require: takes no block")
			}
			q := &Requirement{Mode: args[0]}
			switch args[0] {
			case "users":
				q.Users = args[1:]
			case "groups":
				q.Groups = args[1:]
			default:
				if len(args) > 1 {
					// Only users and groups have a place for names.
					return d.Errf("require %s: takes no names, got %q", args[0], args[1])
				}
			}
			h.Require = q

		case "exempt":
			// exempt may appear twice: once for users, once for groups.
			args := d.RemainingArgs()
			if len(args) < 2 || (args[0] != "users" && args[0] != "groups") {
				return d.Errf("exempt: expected users <name...> or groups <name...>")
			}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("exempt: takes no block")
			}
			if h.Exempt == nil {
				h.Exempt = &Exemption{}
			}
			list := &h.Exempt.Users
			if args[0] == "groups" {
				list = &h.Exempt.Groups
			}
			if *list != nil {
				return d.Errf("exempt %s: specified more than once", args[0])
			}
			*list = args[1:]

		case "previous_secrets":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("previous_secrets: expected at least one old secret")
			}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("previous_secrets: takes no block")
			}
			h.PreviousSecrets = args

		default:
			return d.Errf("unrecognized two_factor option %q", opt)
		}
	}
	if err := h.Validate(); err != nil {
		tok, ok := lines[optionOf(err)]
		if !ok {
			tok = directive
		}
		return errAt(tok, err)
	}
	return nil
}

// optionOf is the top-level option an error of Validate's names: every
// such error starts with the option ("store redis: db: ..." is store's).
func optionOf(err error) string {
	head, _, _ := strings.Cut(err.Error(), ":")
	opt, _, _ := strings.Cut(head, " ")
	return opt
}

// errAt reports err at tok's file and line, the way the Caddyfile's own
// errors are.
func errAt(tok caddyfile.Token, err error) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.WrapErr(err)
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
			if err != nil {
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
				n, err := intArg(d, "store redis: "+opt)
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
				dur, err := durationArg(d, "store redis: "+opt)
				if err != nil {
					return nil, err
				}
				if opt == "dial_timeout" {
					sc.DialTimeout = dur
				} else {
					sc.ReadTimeout = dur
				}
			default:
				return nil, d.Errf("store redis: unrecognized option %q", opt)
			}
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

// intArg reads one whole number for opt; its range is Validate's rule.
func intArg(d *caddyfile.Dispenser, opt string) (int, error) {
	val, err := oneArg(d, opt)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(val)
	if err != nil {
		return 0, d.Errf("%s: expected a whole number, got %q", opt, val)
	}
	return n, nil
}

// durationArg reads one duration (such as 90s, 12h or 30d) for opt; its
// range is Validate's rule.
func durationArg(d *caddyfile.Dispenser, opt string) (caddy.Duration, error) {
	val, err := oneArg(d, opt)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s: invalid duration %q: %v", opt, val, err)
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
