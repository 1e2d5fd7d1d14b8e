package redisstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// usersBatch is how many users Users checks per pipeline.
const usersBatch = 1000

// addUser lists user in the realm's users set. It is a command of its
// own (the set is in no user's slot) that the writes of enrollments and
// profiles send before their own command, so that a user with an
// enrollment or a profile is always in the set; a failure in between
// leaves a member without records, which Users skips.
func (s *Store) addUser(ctx context.Context, realm, user string) error {
	return s.rdb.SAdd(ctx, s.keys.users(realm), user).Err()
}

// Users lists the realm's users that have an enrollment or a profile,
// sorted by name (as bytes). It reads the realm's users set and checks
// each member's enrollment and profile (one script per member, in
// pipelines), skipping members that have neither (after a ResetUser of a
// user without a profile, or a failed write). A profile hash that holds
// only session index entries is not a profile. It never scans the
// keyspace.
func (s *Store) Users(ctx context.Context, realm string) ([]string, error) {
	const op = "listing users"
	ctx, cancel := s.call(ctx)
	defer cancel()
	members, err := s.rdb.SMembers(ctx, s.keys.users(realm)).Result()
	if err != nil {
		return nil, fail(op, err)
	}
	users := make([]string, 0, len(members))
	for batch := range slices.Chunk(members, usersBatch) {
		keys := make([][]string, len(batch))
		for i, u := range batch {
			keys[i] = []string{s.keys.user(realm, u, sufEnrollment), s.keys.user(realm, u, sufProfile)}
		}
		for i, c := range s.runEach(ctx, userExistsScript, keys) {
			n, err := c.Int()
			if err != nil {
				return nil, fail(op, err)
			}
			if n > 0 {
				users = append(users, batch[i])
			}
		}
	}
	slices.Sort(users)
	return users, nil
}

// profileFields are the fields of a profile hash, in the order of the
// replies of HMGET (Profile) and seeUserScript.
var profileFields = []string{fieldFirstSeen, fieldLastVerified, fieldLastMethod, fieldDisabledUntil}

// profileReply decodes the reply of an HMGET of profileFields. ok is false
// if the hash has no field first: then the user has no profile (the hash
// may hold session index entries only).
func profileReply(res []any) (p sessions.Profile, ok bool, err error) {
	if len(res) != len(profileFields) {
		return sessions.Profile{}, false, errors.New("unexpected reply")
	}
	m := make(map[string]string, len(res))
	for i, v := range res {
		switch v := v.(type) {
		case nil:
		case string:
			m[profileFields[i]] = v
		default:
			return sessions.Profile{}, false, errors.New("unexpected reply")
		}
	}
	if _, ok := m[fieldFirstSeen]; !ok {
		return sessions.Profile{}, false, nil
	}
	p, err = decodeProfile(m)
	return p, err == nil, err
}

// Profile returns the user's profile, or sessions.ErrNotFound.
func (s *Store) Profile(ctx context.Context, realm, user string) (sessions.Profile, error) {
	const op = "reading profile"
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.rdb.HMGet(ctx, s.keys.user(realm, user, sufProfile), profileFields...).Result()
	if err != nil {
		return sessions.Profile{}, fail(op, err)
	}
	p, ok, err := profileReply(res)
	switch {
	case err != nil:
		return sessions.Profile{}, fail(op, err)
	case !ok:
		return sessions.Profile{}, sessions.ErrNotFound
	}
	return p, nil
}

// profileArgs checks the names of a profile write, and lists the user in
// the realm's users set.
func (s *Store) profileArgs(ctx context.Context, op, realm, user string) error {
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	return fail(op, s.addUser(ctx, realm, user))
}

// SeeUser sets the user's FirstSeen to t unless one is set, atomically
// (one script), and returns the profile.
func (s *Store) SeeUser(ctx context.Context, realm, user string, t time.Time) (sessions.Profile, error) {
	const op = "recording first visit"
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.profileArgs(ctx, op, realm, user); err != nil {
		return sessions.Profile{}, err
	}
	res, err := seeUserScript.Run(ctx, s.rdb, []string{s.keys.user(realm, user, sufProfile)},
		timeFields(t), zeroFields).Slice()
	if err != nil {
		return sessions.Profile{}, fail(op, err)
	}
	p, ok, err := profileReply(res)
	switch {
	case err != nil:
		return sessions.Profile{}, fail(op, err)
	case !ok:
		return sessions.Profile{}, fail(op, errors.New("no first visit after setting it"))
	}
	return p, nil
}

// RecordVerification sets the user's LastVerified and LastMethod (and
// FirstSeen to t unless one is set), atomically.
func (s *Store) RecordVerification(ctx context.Context, realm, user, method string, t time.Time) error {
	const op = "recording verification"
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.profileArgs(ctx, op, realm, user); err != nil {
		return err
	}
	return fail(op, recordVerificationScript.Run(ctx, s.rdb, []string{s.keys.user(realm, user, sufProfile)},
		timeFields(t), zeroFields, method).Err())
}

// SetDisabled sets the user's DisabledUntil, or clears it if until is
// zero (and FirstSeen to the store's now unless one is set), atomically.
func (s *Store) SetDisabled(ctx context.Context, realm, user string, until time.Time) error {
	const op = "setting exemption"
	now := s.now()
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.profileArgs(ctx, op, realm, user); err != nil {
		return err
	}
	u := ""
	if !until.IsZero() {
		u = timeFields(until)
	}
	return fail(op, setDisabledScript.Run(ctx, s.rdb, []string{s.keys.user(realm, user, sufProfile)},
		timeFields(now), zeroFields, u).Err())
}
