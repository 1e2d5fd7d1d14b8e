package filestore

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// TestFactorsFromFileBeforeFactors opens a file in the layout of before
// factors (realm buckets without "factors"), with an enrollment written
// by Enroll, and checks that the enrollment reads as one TOTP factor,
// that factor operations work on it, and that Enrollment is unchanged.
func TestFactorsFromFileBeforeFactors(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "2fa.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e := sessions.Enrollment{SealedSecret: []byte("sealed"), Algorithm: "SHA1", Digits: 6, Period: 30, Created: created}
	s, err := Open(path, Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enroll(ctx, "default", "alice", e, []string{"h1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make the file look as the code before factors left it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bRealms).Bucket([]byte("default")).DeleteBucket(bFactors)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, Options{SweepInterval: -1})
	got, err := s.Factors(ctx, "default", "alice")
	if err != nil {
		t.Fatalf("Factors: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Factors: %d factors, want 1", len(got))
	}
	f := got[0]
	if f.ID != sessions.LegacyTOTPFactorID || f.Kind != sessions.FactorTOTP || f.Name != sessions.LegacyTOTPFactorName ||
		!f.Added.Equal(created) || !bytes.Equal(f.Sealed, e.SealedSecret) || f.TOTP == nil || *f.TOTP != (sessions.TOTPParams{Algorithm: "SHA1", Digits: 6, Period: 30}) {
		t.Fatalf("the enrollment read as factor %+v", f)
	}
	if err := s.AddFactor(ctx, "default", "alice", sessions.Factor{ID: "f1", Kind: sessions.FactorTOTP, Sealed: []byte("x")}, 10); err != nil {
		t.Fatalf("AddFactor on a file from before factors: %v", err)
	}
	ok, err := s.AcceptFactorStep(ctx, "default", "alice", sessions.LegacyTOTPFactorID, 7, time.Now().Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("AcceptFactorStep(enrollment) = %v, %v; want true", ok, err)
	}
	if ok, err := s.AcceptStep(ctx, "default", "alice", 7, time.Now().Add(time.Hour)); err != nil || ok {
		t.Fatalf("AcceptStep after the same step through the factor = %v, %v; want false", ok, err)
	}
	enr, err := s.Enrollment(ctx, "default", "alice")
	if err != nil || !bytes.Equal(enr.SealedSecret, e.SealedSecret) || enr.RecoveryCodes != 1 {
		t.Fatalf("Enrollment after factor operations = %+v, %v", enr, err)
	}
}
