package redisstore

import "strings"

// uaTokens are substrings common in browsers' User-Agent headers. A
// compressed user agent replaces each with one byte, 0x80 + its index;
// other bytes are literal (printable ASCII only: a user agent with any
// other byte is stored as it is). Stored records refer to tokens by
// index, so this list is frozen: tokens may be appended (up to 128 in
// all), never changed, removed or reordered.
var uaTokens = [...]string{
	"Mozilla/5.0 (",
	"Windows NT 10.0; Win64; x64",
	"Macintosh; Intel Mac OS X 10_15_7",
	"Macintosh; Intel Mac OS X 10.15",
	"X11; Linux x86_64",
	"X11; Ubuntu; Linux x86_64",
	"X11; CrOS x86_64 ",
	"Linux; Android ",
	"iPhone; CPU iPhone OS ",
	"iPad; CPU OS ",
	" like Mac OS X",
	") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/",
	") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/",
	") AppleWebKit/605.1.15 (KHTML, like Gecko)",
	".0.0.0 Safari/537.36",
	".0.0.0 Mobile Safari/537.36",
	" Safari/605.1.15",
	" Mobile/15E148 Safari/604.1",
	" Safari/604.1",
	"; rv:",
	") Gecko/20100101 Firefox/",
	" Edg/",
	" OPR/",
	" SamsungBrowser/",
	"; K",
	" CriOS/",
	" FxiOS/",
	" EdgiOS/",
	"Windows NT 10.0",
	"Windows NT 6.1",
	"; Win64; x64",
	"; WOW64",
	"Linux",
	"Android",
	"Mobile",
	"Safari/",
	"Chrome/",
	"Firefox/",
	"Version/",
	"AppleWebKit/",
	"(KHTML, like Gecko)",
	"Gecko/",
	"Mozilla/5.0",
	".0.0.0",
	" Mobile Safari/537.36",
	"Safari/537.36",
	"Safari/605.1.15",
	"Mobile/15E148",
	"Macintosh",
	"Windows",
	"iPhone",
	"Intel Mac OS X ",
	"x86_64",
	"aarch64",
	"armv8l",
	"Trident/7.0; rv:11.0) like Gecko",
	"Thunderbird/",
	"Electron/",
	"curl/",
	"Wget/",
	"python-requests/",
	"Go-http-client/",
	"okhttp/",
	"Dalvik/",
}

// compressUA compresses a user agent with uaTokens (greedy, longest token
// first). It reports false if the user agent is not printable ASCII or
// would not get shorter.
func compressUA(ua string) ([]byte, bool) {
	if len(ua) == 0 {
		return nil, false
	}
	for i := 0; i < len(ua); i++ {
		if ua[i] < 0x20 || ua[i] > 0x7e {
			return nil, false
		}
	}
	out := make([]byte, 0, len(ua))
	for i := 0; i < len(ua); {
		best, bestLen := -1, 0
		for j, tok := range uaTokens {
			if len(tok) > bestLen && strings.HasPrefix(ua[i:], tok) {
				best, bestLen = j, len(tok)
			}
		}
		if best < 0 {
			out = append(out, ua[i])
			i++
			continue
		}
		out = append(out, byte(0x80+best))
		i += bestLen
	}
	if len(out) >= len(ua) {
		return nil, false
	}
	return out, true
}

// expandUA reverses compressUA.
func expandUA(b []byte) (string, error) {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		} else if int(c-0x80) < len(uaTokens) {
			n += len(uaTokens[c-0x80])
		} else {
			return "", corrupt("unknown user agent token")
		}
	}
	var s strings.Builder
	s.Grow(n)
	for _, c := range b {
		if c < 0x80 {
			s.WriteByte(c)
		} else {
			s.WriteString(uaTokens[c-0x80])
		}
	}
	return s.String(), nil
}
