// Package factorset holds the factor logic that both stores share: how a
// user's stored factor list and legacy Enrollment merge into the list
// that sessions.Store.Factors returns (the migration on read), and the
// checks of every factor operation. The stores run it inside their own
// atomic step (a bbolt transaction, a Redis compare-and-set script).
package factorset

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Entry is a factor as stored, with its replay window.
type Entry struct {
	sessions.Factor
	// Step is the last accepted TOTP step of the factor, valid until
	// StepExpires (not used for the legacy factor, whose window is the
	// user's AcceptStep record).
	Step        int64     `json:"step,omitempty"`
	StepExpires time.Time `json:"step_expires,omitempty"`
}

// Set is a user's factors as one value: the stored list merged with the
// enrollment.
type Set struct {
	Entries []Entry
	// HasEnrollment is whether the user had an Enrollment when read.
	HasEnrollment bool
	// DropEnrollment is set by Remove when the legacy factor went: the
	// store deletes the enrollment in the same atomic step.
	DropEnrollment bool
}

// Decode reads a stored list (nil: none) and the user's enrollment (nil:
// none) into a Set. The enrollment appears as the factor
// sessions.LegacyTOTPFactorID: its metadata (name, last use) from the
// stored list if there, its Sealed and TOTP always from the enrollment.
// A stored legacy entry without an enrollment is dropped.
func Decode(stored []byte, enr *sessions.Enrollment) (Set, error) {
	var list []Entry
	if stored != nil {
		if err := json.Unmarshal(stored, &list); err != nil {
			return Set{}, fmt.Errorf("decoding factors: %w", err)
		}
	}
	set := Set{HasEnrollment: enr != nil}
	i := slices.IndexFunc(list, func(e Entry) bool { return e.ID == sessions.LegacyTOTPFactorID })
	if enr == nil {
		if i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		set.Entries = list
		return set, nil
	}
	legacy := Entry{Factor: sessions.Factor{
		ID:    sessions.LegacyTOTPFactorID,
		Kind:  sessions.FactorTOTP,
		Name:  sessions.LegacyTOTPFactorName,
		Added: enr.Created,
	}}
	if i >= 0 {
		legacy.Name, legacy.LastUsed = list[i].Name, list[i].LastUsed
		list = slices.Delete(list, i, i+1)
	}
	legacy.Sealed = enr.SealedSecret
	legacy.TOTP = &sessions.TOTPParams{Algorithm: enr.Algorithm, Digits: enr.Digits, Period: enr.Period}
	// The enrollment is the oldest factor: every other one was added
	// while it existed, or after it was removed (then it is not here).
	set.Entries = append([]Entry{legacy}, list...)
	return set, nil
}

// Factors returns the set's factors, the enrollment's first, never nil.
func (s Set) Factors() []sessions.Factor {
	out := make([]sessions.Factor, 0, len(s.Entries))
	for _, e := range s.Entries {
		out = append(out, e.Factor)
	}
	return out
}

// Encode returns the list to store, or nil if the store should delete
// it (no factors). The legacy entry keeps only what the enrollment does
// not hold.
func (s Set) Encode() ([]byte, error) {
	if len(s.Entries) == 0 {
		return nil, nil
	}
	list := make([]Entry, len(s.Entries))
	for i, e := range s.Entries {
		if e.ID == sessions.LegacyTOTPFactorID {
			e.Sealed, e.TOTP, e.MAC = nil, nil, nil
			e.Step, e.StepExpires = 0, time.Time{}
		}
		list[i] = e
	}
	return json.Marshal(list)
}

func (s *Set) find(id string) int {
	return slices.IndexFunc(s.Entries, func(e Entry) bool { return e.ID == id })
}

// Add appends f if there is room and its ID is new.
func (s *Set) Add(f sessions.Factor, maxFactors int) error {
	switch {
	case f.ID == "":
		return errors.New("factor ID is empty")
	case f.ID == sessions.LegacyTOTPFactorID:
		return fmt.Errorf("factor ID %q is reserved", f.ID)
	case f.Kind == "":
		return errors.New("factor kind is empty")
	case s.find(f.ID) >= 0:
		return sessions.ErrExists
	case len(s.Entries) >= maxFactors:
		return sessions.ErrTooManyFactors
	}
	s.Entries = append(s.Entries, Entry{Factor: f})
	return nil
}

// Rename sets a factor's name.
func (s *Set) Rename(id, name string) error {
	i := s.find(id)
	if i < 0 {
		return sessions.ErrNotFound
	}
	s.Entries[i].Name = name
	return nil
}

// Remove removes a factor; with keepOne, not the only one.
func (s *Set) Remove(id string, keepOne bool) error {
	i := s.find(id)
	if i < 0 {
		return sessions.ErrNotFound
	}
	if keepOne && len(s.Entries) == 1 {
		return sessions.ErrLastFactor
	}
	s.Entries = slices.Delete(s.Entries, i, i+1)
	if id == sessions.LegacyTOTPFactorID {
		s.DropEnrollment = true
	}
	return nil
}

// MarkUsed sets a factor's LastUsed.
func (s *Set) MarkUsed(id string, t time.Time) error {
	i := s.find(id)
	if i < 0 {
		return sessions.ErrNotFound
	}
	s.Entries[i].LastUsed = t
	return nil
}

// AcceptStep records step as the factor's last accepted step if it is
// greater than the recorded one or that record has expired at now, and
// reports whether it did. Not for the legacy factor.
func (s *Set) AcceptStep(id string, step int64, expires, now time.Time) (bool, error) {
	i := s.find(id)
	if i < 0 {
		return false, sessions.ErrNotFound
	}
	e := &s.Entries[i]
	if now.Before(e.StepExpires) && step <= e.Step {
		return false, nil
	}
	e.Step, e.StepExpires = step, expires
	return true, nil
}
