package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

func profileDiff(got, want sessions.Profile) string {
	var d []string
	tm := func(name string, g, w time.Time) {
		if !timeEqual(g, w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	tm("FirstSeen", got.FirstSeen, want.FirstSeen)
	tm("LastVerified", got.LastVerified, want.LastVerified)
	if got.LastMethod != want.LastMethod {
		d = append(d, fmt.Sprintf("LastMethod %q, want %q", got.LastMethod, want.LastMethod))
	}
	tm("DisabledUntil", got.DisabledUntil, want.DisabledUntil)
	return strings.Join(d, "; ")
}

func wantProfile(t *testing.T, s sessions.Store, realm, user string, want sessions.Profile) {
	t.Helper()
	got, err := s.Profile(t.Context(), realm, user)
	ok(t, err, fmt.Sprintf("Profile(%.40q, %.40q)", realm, user))
	if d := profileDiff(got, want); d != "" {
		t.Fatalf("Profile(%.40q, %.40q): %s", realm, user, d)
	}
}

func noProfile(t *testing.T, s sessions.Store, realm, user string) {
	t.Helper()
	_, err := s.Profile(t.Context(), realm, user)
	notFound(t, err, fmt.Sprintf("Profile(%.40q, %.40q)", realm, user))
}

func seeUser(t *testing.T, s sessions.Store, realm, user string, at time.Time, want sessions.Profile) {
	t.Helper()
	got, err := s.SeeUser(t.Context(), realm, user, at)
	ok(t, err, "SeeUser")
	if d := profileDiff(got, want); d != "" {
		t.Fatalf("SeeUser(%.40q, %.40q, %v): %s", realm, user, at, d)
	}
}

func recordVerification(t *testing.T, s sessions.Store, realm, user, method string, at time.Time) {
	t.Helper()
	ok(t, s.RecordVerification(t.Context(), realm, user, method, at), "RecordVerification")
}

func setDisabled(t *testing.T, s sessions.Store, realm, user string, until time.Time) {
	t.Helper()
	ok(t, s.SetDisabled(t.Context(), realm, user, until), "SetDisabled")
}

// wantUsers checks Users(realm): exactly users, in that order.
func wantUsers(t *testing.T, s sessions.Store, realm string, users ...string) {
	t.Helper()
	got, err := s.Users(t.Context(), realm)
	ok(t, err, fmt.Sprintf("Users(%.40q)", realm))
	if len(got) == 0 && len(users) == 0 {
		return // nil and empty are both fine
	}
	if !slices.Equal(got, users) {
		t.Fatalf("Users(%.40q) = %.60q, want %.60q", realm, got, users)
	}
}

// Fixed times for profiles (which do not expire): in a zone other than
// UTC, with nanoseconds, far from the wall clock in both directions.
var (
	zone   = time.FixedZone("UTC-5", -5*3600)
	t2020  = time.Date(2020, 3, 4, 5, 6, 7, 890123456, zone)
	t2021  = time.Date(2021, 1, 2, 3, 4, 5, 6, zone)
	t2022  = time.Date(2022, 12, 31, 23, 59, 59, 999999999, time.UTC)
	t2100  = time.Date(2100, 7, 1, 0, 0, 0, 1, zone)
	t1999  = time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC)
	tEpoch = time.Unix(0, 0)
)

var profileTests = []test{
	{"Absent", func(t *testing.T, s sessions.Store) {
		noProfile(t, s, "r", "alice")
		seeUser(t, s, "r", "bob", t2020, sessions.Profile{FirstSeen: t2020})
		noProfile(t, s, "r", "alice")
		noProfile(t, s, "r", "bo")
		noProfile(t, s, "r", "bobby")
	}},
	{"SeeUserOnce", func(t *testing.T, s sessions.Store) {
		first := sessions.Profile{FirstSeen: t2021}
		seeUser(t, s, "r", "alice", t2021, first)
		wantProfile(t, s, "r", "alice", first)
		// Later and earlier times leave FirstSeen alone.
		seeUser(t, s, "r", "alice", t2022, first)
		seeUser(t, s, "r", "alice", t2020, first)
		wantProfile(t, s, "r", "alice", first)
		// Other users have their own.
		seeUser(t, s, "r", "bob", t2022, sessions.Profile{FirstSeen: t2022})
		wantProfile(t, s, "r", "alice", first)
	}},
	{"SeeUserKeepsFields", func(t *testing.T, s sessions.Store) {
		recordVerification(t, s, "r", "alice", "recovery", t2021)
		setDisabled(t, s, "r", "alice", t2100)
		want := sessions.Profile{FirstSeen: t2021, LastVerified: t2021, LastMethod: "recovery", DisabledUntil: t2100}
		seeUser(t, s, "r", "alice", t2022, want)
		wantProfile(t, s, "r", "alice", want)
	}},
	{"SeeUserConcurrent", func(t *testing.T, s sessions.Store) {
		times := make([]time.Time, concurrency)
		for i := range times {
			times[i] = t2020.Add(time.Duration(i) * time.Second)
		}
		got := make([]sessions.Profile, concurrency)
		errs := make([]error, concurrency)
		race(concurrency, func(i int) {
			got[i], errs[i] = s.SeeUser(t.Context(), "r", "alice", times[i])
		})
		for i := range concurrency {
			ok(t, errs[i], fmt.Sprintf("goroutine %d: SeeUser", i))
		}
		first := got[0].FirstSeen
		if !slices.ContainsFunc(times, first.Equal) {
			t.Fatalf("SeeUser returned FirstSeen %v, which no call passed", first)
		}
		for i := range concurrency {
			if !got[i].FirstSeen.Equal(first) {
				t.Fatalf("concurrent SeeUser calls returned FirstSeen %v and %v, want one time", first, got[i].FirstSeen)
			}
		}
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first})
	}},
	{"RecordVerification", func(t *testing.T, s sessions.Store) {
		// Creates the profile with FirstSeen = t.
		recordVerification(t, s, "r", "alice", "totp", t2021)
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: t2021, LastVerified: t2021, LastMethod: "totp"})
		// Replaces the last verification, keeps FirstSeen.
		recordVerification(t, s, "r", "alice", "trusted_device", t2022)
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: t2021, LastVerified: t2022, LastMethod: "trusted_device"})
		// A method the store does not know, and an earlier time: stored
		// as given.
		recordVerification(t, s, "r", "alice", "webauthn:key 1", t2020)
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: t2021, LastVerified: t2020, LastMethod: "webauthn:key 1"})

		// An existing profile keeps its FirstSeen and DisabledUntil.
		seeUser(t, s, "r", "bob", t2020, sessions.Profile{FirstSeen: t2020})
		setDisabled(t, s, "r", "bob", t2100)
		recordVerification(t, s, "r", "bob", "recovery", t2022)
		wantProfile(t, s, "r", "bob", sessions.Profile{FirstSeen: t2020, LastVerified: t2022, LastMethod: "recovery", DisabledUntil: t2100})
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: t2021, LastVerified: t2020, LastMethod: "webauthn:key 1"})
	}},
	{"SetDisabled", func(t *testing.T, s sessions.Store) {
		// Creates the profile with FirstSeen = the store's now.
		before := time.Now()
		setDisabled(t, s, "r", "alice", t2100)
		after := time.Now()
		p, err := s.Profile(t.Context(), "r", "alice")
		ok(t, err, "Profile")
		if p.FirstSeen.Before(before.Add(-time.Minute)) || p.FirstSeen.After(after.Add(time.Minute)) {
			t.Fatalf("FirstSeen of a profile created by SetDisabled = %v, want about %v", p.FirstSeen, before)
		}
		first := p.FirstSeen
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first, DisabledUntil: t2100})

		// Replaces DisabledUntil, keeps the rest.
		recordVerification(t, s, "r", "alice", "totp", t2022)
		setDisabled(t, s, "r", "alice", t2021)
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first, LastVerified: t2022, LastMethod: "totp", DisabledUntil: t2021})
		// The zero time clears it.
		setDisabled(t, s, "r", "alice", time.Time{})
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first, LastVerified: t2022, LastMethod: "totp"})
		// Clearing twice is fine.
		setDisabled(t, s, "r", "alice", time.Time{})
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first, LastVerified: t2022, LastMethod: "totp"})

		// An existing profile keeps its FirstSeen.
		seeUser(t, s, "r", "bob", t2020, sessions.Profile{FirstSeen: t2020})
		setDisabled(t, s, "r", "bob", t2100)
		wantProfile(t, s, "r", "bob", sessions.Profile{FirstSeen: t2020, DisabledUntil: t2100})
		// Clearing the exemption of a user without a profile creates
		// one without it.
		setDisabled(t, s, "r", "carol", time.Time{})
		p, err = s.Profile(t.Context(), "r", "carol")
		ok(t, err, "Profile")
		if p.FirstSeen.IsZero() || !p.DisabledUntil.IsZero() {
			t.Fatalf("Profile after SetDisabled(zero) = %+v, want FirstSeen set and no DisabledUntil", p)
		}
	}},
	{"NoExpiry", func(t *testing.T, s sessions.Store) {
		// Times long past (an exemption that has ended, a verification
		// years ago) are kept as they are: a profile does not expire.
		seeUser(t, s, "r", "alice", t1999, sessions.Profile{FirstSeen: t1999})
		recordVerification(t, s, "r", "alice", "totp", tEpoch)
		ended := past()
		setDisabled(t, s, "r", "alice", ended)
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: t1999, LastVerified: tEpoch, LastMethod: "totp", DisabledUntil: ended})
		wantUsers(t, s, "r", "alice")
	}},
	{"Realms", func(t *testing.T, s sessions.Store) {
		seeUser(t, s, "r1", "alice", t2020, sessions.Profile{FirstSeen: t2020})
		recordVerification(t, s, "r1", "alice", "totp", t2021)
		setDisabled(t, s, "r1", "alice", t2100)
		noProfile(t, s, "r2", "alice")
		// The same user in another realm starts afresh.
		seeUser(t, s, "r2", "alice", t2022, sessions.Profile{FirstSeen: t2022})
		recordVerification(t, s, "r2", "alice", "recovery", t2022)
		setDisabled(t, s, "r2", "alice", time.Time{})
		wantProfile(t, s, "r1", "alice", sessions.Profile{FirstSeen: t2020, LastVerified: t2021, LastMethod: "totp", DisabledUntil: t2100})
		wantProfile(t, s, "r2", "alice", sessions.Profile{FirstSeen: t2022, LastVerified: t2022, LastMethod: "recovery"})
		ok(t, s.ResetUser(t.Context(), "r2", "alice"), "ResetUser")
		wantProfile(t, s, "r1", "alice", sessions.Profile{FirstSeen: t2020, LastVerified: t2021, LastMethod: "totp", DisabledUntil: t2100})
		wantProfile(t, s, "r2", "alice", sessions.Profile{FirstSeen: t2022})
	}},
}

var userListTests = []test{
	{"Empty", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		wantUsers(t, s, "r")
		// Records that are not enrollments or profiles do not make a
		// user listed.
		p := sessions.PendingEnrollment{SealedSecret: []byte("x"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "pending", p), "PutPendingEnrollment")
		ok(t, s.PutSession(ctx, "r", "s1", newSession("session")), "PutSession")
		ok(t, s.PutDevice(ctx, "r", "d1", newDevice("device", base())), "PutDevice")
		ok(t, s.PutToken(ctx, "r", "k", "token", []byte("v"), future()), "PutToken")
		_, err := s.AddFailure(ctx, "r", "counter", base(), limits)
		ok(t, err, "AddFailure")
		wantAccept(t, s, "r", "step", 1, future(), true)
		// Nor do users of other realms.
		enroll(t, s, "r2", "enrolled", newEnrollment("x"))
		seeUser(t, s, "r3", "seen", t2020, sessions.Profile{FirstSeen: t2020})
		wantUsers(t, s, "r")
		wantUsers(t, s, "never")
		wantUsers(t, s, "r2", "enrolled")
		wantUsers(t, s, "r3", "seen")
	}},
	{"EnrollmentOrProfile", func(t *testing.T, s sessions.Store) {
		enroll(t, s, "r", "erin", newEnrollment("erin"), "h")                  // enrollment only
		seeUser(t, s, "r", "carol", t2020, sessions.Profile{FirstSeen: t2020}) // profile only
		recordVerification(t, s, "r", "bob", "totp", t2021)
		setDisabled(t, s, "r", "dave", t2100)
		enroll(t, s, "r", "alice", newEnrollment("alice")) // both
		seeUser(t, s, "r", "alice", t2020, sessions.Profile{FirstSeen: t2020})
		recordVerification(t, s, "r", "alice", "totp", t2021)
		wantUsers(t, s, "r", "alice", "bob", "carol", "dave", "erin")
		// Listed once however often written.
		for range 3 {
			seeUser(t, s, "r", "erin", t2022, sessions.Profile{FirstSeen: t2022})
			recordVerification(t, s, "r", "carol", "totp", t2022)
		}
		wantUsers(t, s, "r", "alice", "bob", "carol", "dave", "erin")
	}},
	{"Sorted", func(t *testing.T, s sessions.Store) {
		// Sorted by name as bytes, whatever the order of writing.
		names := []string{"b", "B", "a", "ä", "aa", "a b", "a:b", "Z", "0", "a\x00", "~"}
		for i, n := range names {
			if i%2 == 0 {
				enroll(t, s, "r", n, newEnrollment(n))
			} else {
				seeUser(t, s, "r", n, t2020, sessions.Profile{FirstSeen: t2020})
			}
		}
		want := slices.Clone(names)
		slices.Sort(want)
		wantUsers(t, s, "r", want...)
	}},
	{"Realms", func(t *testing.T, s sessions.Store) {
		// Realms whose names are prefixes of each other or would collide
		// if joined with a separator.
		realms := [][]string{
			{"a", "u1", "u2"},
			{"a:b", "u3"},
			{"ab", "u4", "u1"},
			{"a:", "u5"},
			{"b", "a:b"},
		}
		for i, r := range realms {
			for j, u := range r[1:] {
				if (i+j)%2 == 0 {
					enroll(t, s, r[0], u, newEnrollment(u))
				} else {
					setDisabled(t, s, r[0], u, t2100)
				}
			}
		}
		for _, r := range realms {
			want := slices.Clone(r[1:])
			slices.Sort(want)
			wantUsers(t, s, r[0], want...)
		}
		wantUsers(t, s, "")
		wantUsers(t, s, ":")
	}},
	{"AwkwardNames", func(t *testing.T, s sessions.Store) {
		for i, n := range awkwardNames {
			// Each name as a user in a fixed realm, and as a realm with
			// itself as the user.
			switch i % 3 {
			case 0:
				enroll(t, s, "r", n, newEnrollment(n))
				seeUser(t, s, n, n, t2020, sessions.Profile{FirstSeen: t2020})
			case 1:
				seeUser(t, s, "r", n, t2020, sessions.Profile{FirstSeen: t2020})
				enroll(t, s, n, n, newEnrollment(n))
			case 2:
				recordVerification(t, s, "r", n, "totp", t2021)
				setDisabled(t, s, n, n, t2100)
			}
		}
		want := slices.Clone(awkwardNames)
		slices.Sort(want)
		wantUsers(t, s, "r", want...)
		for i, n := range awkwardNames {
			wantUsers(t, s, n, n)
			what := fmt.Sprintf("name %.40q", n)
			switch i % 3 {
			case 0:
				noProfile(t, s, "r", n)
				wantProfile(t, s, n, n, sessions.Profile{FirstSeen: t2020})
			case 1:
				wantProfile(t, s, "r", n, sessions.Profile{FirstSeen: t2020})
				noProfile(t, s, n, n)
			case 2:
				wantProfile(t, s, "r", n, sessions.Profile{FirstSeen: t2021, LastVerified: t2021, LastMethod: "totp"})
				p, err := s.Profile(t.Context(), n, n)
				ok(t, err, what+": Profile")
				if !p.DisabledUntil.Equal(t2100) {
					t.Fatalf("%s: DisabledUntil = %v, want %v", what, p.DisabledUntil, t2100)
				}
			}
		}
	}},
	{"AfterReset", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		enroll(t, s, "r", "enrolled", newEnrollment("x"), "h")
		enroll(t, s, "r", "both", newEnrollment("y"), "h")
		seeUser(t, s, "r", "both", t2020, sessions.Profile{FirstSeen: t2020})
		seeUser(t, s, "r", "seen", t2020, sessions.Profile{FirstSeen: t2020})
		wantUsers(t, s, "r", "both", "enrolled", "seen")
		ok(t, s.ResetUser(ctx, "r", "enrolled"), "ResetUser")
		ok(t, s.ResetUser(ctx, "r", "both"), "ResetUser")
		ok(t, s.ResetUser(ctx, "r", "seen"), "ResetUser")
		// A user with a profile keeps it (and stays listed); a user who
		// only had an enrollment has nothing left.
		wantUsers(t, s, "r", "both", "seen")
		noProfile(t, s, "r", "enrolled")
		// Enrolling again lists the user again.
		enroll(t, s, "r", "enrolled", newEnrollment("z"))
		wantUsers(t, s, "r", "both", "enrolled", "seen")
	}},
}
