package caddymodule

import "strings"

// userAgentFamily names the browser and operating system of a User-Agent
// header for the device list: ("Chrome", "Windows"). It knows the common
// families only and says so: either is "" when it is not recognized (the
// page then says "Unknown browser" in the user's language). User-Agents
// are easy to fake and some browsers pose as others (Brave reads as
// Chrome, an iPad in desktop mode as macOS): this is a hint for people,
// never used for a decision.
func userAgentFamily(ua string) (browser, system string) {
	has := func(s string) bool { return strings.Contains(ua, s) }
	// Order matters: iOS User-Agents say "like Mac OS X", Android and
	// ChromeOS ones say "Linux".
	switch {
	case has("iPad"):
		system = "iPadOS"
	case has("iPhone"), has("iPod"):
		system = "iOS"
	case has("CrOS"):
		system = "ChromeOS"
	case has("Android"):
		system = "Android"
	case has("Windows"):
		system = "Windows"
	case has("Macintosh"), has("Mac OS X"):
		system = "macOS"
	case has("Linux"):
		system = "Linux"
	}
	// Chromium-based browsers also say "Chrome/" and "Safari/", and
	// every browser on iOS is Safari's engine with its own marker: the
	// specific markers are checked first.
	apple := system == "macOS" || system == "iOS" || system == "iPadOS"
	switch {
	case has("Edg/"), has("EdgA/"), has("EdgiOS/"), has("Edge/"):
		browser = "Edge"
	case has("OPR/"), has("OPT/"), has("OPiOS/"), has("Opera"):
		browser = "Opera"
	case has("SamsungBrowser/"):
		browser = "Samsung Internet"
	case has("Vivaldi/"):
		browser = "Vivaldi"
	case has("Firefox/"), has("FxiOS/"):
		browser = "Firefox"
	case has("CriOS/"):
		browser = "Chrome"
	case has("Chrome/") && !has("; wv)") && !has("Electron/") && !has("YaBrowser/") && !has("UCBrowser/"):
		browser = "Chrome"
	case apple && has("Safari/") && has("Version/") && !has("Chrome") && !has("Chromium"):
		browser = "Safari"
	}
	return browser, system
}
