// Package legacyapps holds the slow end-to-end tests that put real PHP
// applications from Debian's archive (WordPress, MediaWiki, phpMyAdmin)
// behind the two_factor gate in app_login mode: a private php-fpm per
// application, the application's own database (MariaDB or SQLite), and
// Caddy in-process. It has no non-test code; it is a package of its own
// so that its tests run in parallel with caddymodule's.
//
// Run them with
//
//	go test ./legacyapps/ -count=1 -v
//
// LEGACYAPPS=wordpress,mediawiki limits the run to some applications.
// A missing Debian package skips that application (with the apt-get line
// that installs it), unless CI=true, where it is a failure.
package legacyapps
