package caddymodule

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Prometheus metrics of the gate.
//
// The collectors are created once, at package level, so that their values
// survive config reloads; every config gets a fresh registry from Caddy
// (ctx.GetMetricsRegistry), and registerMetrics adds them to it. Caddy
// serves that registry on the admin endpoint's /metrics and through the
// metrics handler directive.
//
// Labels never carry a user name, client address, realm or anything else a
// request chooses: their values come from constants in this package, which
// keeps the number of series bounded and keeps personal data out of the
// metrics.
const (
	metricsNamespace = "caddy"
	metricsSubsystem = "two_factor"
)

var (
	// verificationsTotal counts second-factor verifications by method
	// (totp, recovery, trusted_device) and result (success, failure).
	// Confirming an enrollment counts as a totp verification.
	verificationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "verifications_total",
		Help:      "Second-factor verifications, by method (totp, recovery, trusted_device) and result (success, failure).",
	}, []string{"method", "result"})

	// failuresTotal breaks the failed verifications down by reason
	// (wrong_code, used_code, bad_format, recovery_code).
	failuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "failures_total",
		Help:      "Failed verifications, by reason (wrong_code, used_code, bad_format, recovery_code).",
	}, []string{"reason"})

	// enrollmentsTotal counts confirmed enrollments.
	enrollmentsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "enrollments_total",
		Help:      "Confirmed TOTP enrollments.",
	})

	// lockoutsTotal counts the failures that started a lockout.
	lockoutsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "lockouts_total",
		Help:      "Lockouts started because the failure limit was reached.",
	})

	// storeErrorsTotal counts failed store calls by operation (the
	// sessions.Store method). ErrNotFound and ErrExists are answers, not
	// failures, and a call abandoned because its request was canceled is
	// not the store's fault: neither is counted.
	storeErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "store_errors_total",
		Help:      "Failed session store calls, by operation (the store method).",
	}, []string{"op"})

	// storeDuration is the latency of store calls by operation. The
	// buckets span a local file read (tens of µs) to a struggling
	// network store (1 s).
	storeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "store_duration_seconds",
		Help:      "Latency of session store calls, by operation (the store method).",
		Buckets:   []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"op"})
)

// collectors is every collector registerMetrics registers.
var collectors = []prometheus.Collector{
	verificationsTotal, failuresTotal, enrollmentsTotal, lockoutsTotal, storeErrorsTotal, storeDuration,
}

func init() {
	// Export the usual series at zero from the start, so that rate() and
	// alerts work before the first event.
	for _, m := range []string{MethodTOTP, MethodRecovery, MethodTrustedDevice} {
		for _, r := range []string{"success", "failure"} {
			verificationsTotal.WithLabelValues(m, r)
		}
	}
	for _, r := range []string{"wrong_code", "used_code", "bad_format"} {
		failuresTotal.WithLabelValues(r)
	}
}

// registerMetrics registers the gate's collectors on the registry of the
// config being provisioned. Every handler of a config calls it; the
// registry already holding them is expected, any other error is logged
// (metrics are not worth failing a config for).
func registerMetrics(ctx caddy.Context) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range collectors {
		err := reg.Register(c)
		var already prometheus.AlreadyRegisteredError
		if err != nil && !errors.As(err, &already) {
			ctx.Logger().Error("registering two_factor metrics", zap.Error(err))
		}
	}
}

// observe turns an audit event into metrics. Called by audit for every
// security event; the values come from the gate's constants, never from
// the request.
func (h *Handler) observe(event, method, result, reason string) {
	switch event {
	case "verify":
		verificationsTotal.WithLabelValues(method, result).Inc()
		if result == "failure" && reason != "" {
			failuresTotal.WithLabelValues(reason).Inc()
		}
	case "lockout":
		lockoutsTotal.Inc()
	case "enroll":
		if result == "success" {
			enrollmentsTotal.Inc()
		}
	}
}

// storeOp holds the pre-resolved series of one store operation, so that
// an instrumented call does no label lookup and allocates nothing.
type storeOp struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

func newStoreOp(name string) *storeOp {
	return &storeOp{duration: storeDuration.WithLabelValues(name), errors: storeErrorsTotal.WithLabelValues(name)}
}

// done records a call that started at start and ended with err.
func (o *storeOp) done(start time.Time, err error) {
	o.duration.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, sessions.ErrNotFound) && !errors.Is(err, sessions.ErrExists) &&
		!errors.Is(err, sessions.ErrTooManyFactors) && !errors.Is(err, sessions.ErrLastFactor) &&
		!errors.Is(err, context.Canceled) {
		o.errors.Inc()
	}
}

// One storeOp per sessions.Store method, labelled with the method's name.
var (
	opEnrollment         = newStoreOp("Enrollment")
	opEnroll             = newStoreOp("Enroll")
	opSetRecoveryCodes   = newStoreOp("SetRecoveryCodes")
	opReplaceSealed      = newStoreOp("ReplaceSealedSecret")
	opUseRecoveryCode    = newStoreOp("UseRecoveryCode")
	opAcceptStep         = newStoreOp("AcceptStep")
	opResetUser          = newStoreOp("ResetUser")
	opPutPending         = newStoreOp("PutPendingEnrollment")
	opPending            = newStoreOp("PendingEnrollment")
	opAddPending         = newStoreOp("AddPendingEnrollment")
	opEnrollPending      = newStoreOp("EnrollPending")
	opFactors            = newStoreOp("Factors")
	opAddFactor          = newStoreOp("AddFactor")
	opRenameFactor       = newStoreOp("RenameFactor")
	opRemoveFactor       = newStoreOp("RemoveFactor")
	opMarkFactorUsed     = newStoreOp("MarkFactorUsed")
	opAcceptFactorStep   = newStoreOp("AcceptFactorStep")
	opAddFailure         = newStoreOp("AddFailure")
	opAttempts           = newStoreOp("Attempts")
	opClearFailures      = newStoreOp("ClearFailures")
	opReserveAttempt     = newStoreOp("ReserveAttempt")
	opReleaseAttempt     = newStoreOp("ReleaseAttempt")
	opPutSession         = newStoreOp("PutSession")
	opSession            = newStoreOp("Session")
	opTouchSession       = newStoreOp("TouchSession")
	opDeleteSession      = newStoreOp("DeleteSession")
	opUserSessions       = newStoreOp("UserSessions")
	opDeleteUserSessions = newStoreOp("DeleteUserSessions")
	opPutDevice          = newStoreOp("PutDevice")
	opDevice             = newStoreOp("Device")
	opTouchDevice        = newStoreOp("TouchDevice")
	opDeleteDevice       = newStoreOp("DeleteDevice")
	opUserDevices        = newStoreOp("UserDevices")
	opDeleteUserDevices  = newStoreOp("DeleteUserDevices")
	opPutToken           = newStoreOp("PutToken")
	opConsumeToken       = newStoreOp("ConsumeToken")
	opUsers              = newStoreOp("Users")
	opProfile            = newStoreOp("Profile")
	opSeeUser            = newStoreOp("SeeUser")
	opRecordVerification = newStoreOp("RecordVerification")
	opSetDisabled        = newStoreOp("SetDisabled")
	opPing               = newStoreOp("Ping")
)

// instrumentStore returns s wrapped so that every call is timed in
// store_duration_seconds and every failure counted in store_errors_total.
func instrumentStore(s sessions.Store) sessions.Store {
	if _, ok := s.(*instrumentedStore); ok || s == nil {
		return s
	}
	return &instrumentedStore{next: s}
}

// instrumentedStore measures the calls to the store it wraps. It does not
// embed the interface on purpose: a method added to sessions.Store fails
// to compile here until it is instrumented, instead of silently passing
// through unmeasured.
type instrumentedStore struct {
	next sessions.Store
}

var _ sessions.Store = (*instrumentedStore)(nil)

// Enrollment implements sessions.Store.
func (s *instrumentedStore) Enrollment(ctx context.Context, realm, user string) (sessions.Enrollment, error) {
	start := time.Now()
	e, err := s.next.Enrollment(ctx, realm, user)
	opEnrollment.done(start, err)
	return e, err
}

// Enroll implements sessions.Store.
func (s *instrumentedStore) Enroll(ctx context.Context, realm, user string, e sessions.Enrollment, recoveryHashes []string) error {
	start := time.Now()
	err := s.next.Enroll(ctx, realm, user, e, recoveryHashes)
	opEnroll.done(start, err)
	return err
}

// SetRecoveryCodes implements sessions.Store.
func (s *instrumentedStore) SetRecoveryCodes(ctx context.Context, realm, user string, recoveryHashes []string) error {
	start := time.Now()
	err := s.next.SetRecoveryCodes(ctx, realm, user, recoveryHashes)
	opSetRecoveryCodes.done(start, err)
	return err
}

// ReplaceSealedSecret implements sessions.Store.
func (s *instrumentedStore) ReplaceSealedSecret(ctx context.Context, realm, user string, old, sealed []byte) (bool, error) {
	start := time.Now()
	ok, err := s.next.ReplaceSealedSecret(ctx, realm, user, old, sealed)
	opReplaceSealed.done(start, err)
	return ok, err
}

// UseRecoveryCode implements sessions.Store.
func (s *instrumentedStore) UseRecoveryCode(ctx context.Context, realm, user, hash string) (int, error) {
	start := time.Now()
	n, err := s.next.UseRecoveryCode(ctx, realm, user, hash)
	opUseRecoveryCode.done(start, err)
	return n, err
}

// AcceptStep implements sessions.Store.
func (s *instrumentedStore) AcceptStep(ctx context.Context, realm, user string, step int64, expires time.Time) (bool, error) {
	start := time.Now()
	ok, err := s.next.AcceptStep(ctx, realm, user, step, expires)
	opAcceptStep.done(start, err)
	return ok, err
}

// ResetUser implements sessions.Store.
func (s *instrumentedStore) ResetUser(ctx context.Context, realm, user string) error {
	start := time.Now()
	err := s.next.ResetUser(ctx, realm, user)
	opResetUser.done(start, err)
	return err
}

// PutPendingEnrollment implements sessions.Store.
func (s *instrumentedStore) PutPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) error {
	start := time.Now()
	err := s.next.PutPendingEnrollment(ctx, realm, user, p)
	opPutPending.done(start, err)
	return err
}

// PendingEnrollment implements sessions.Store.
func (s *instrumentedStore) PendingEnrollment(ctx context.Context, realm, user string) (sessions.PendingEnrollment, error) {
	start := time.Now()
	p, err := s.next.PendingEnrollment(ctx, realm, user)
	opPending.done(start, err)
	return p, err
}

// AddPendingEnrollment implements sessions.Store.
func (s *instrumentedStore) AddPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) (bool, error) {
	start := time.Now()
	ok, err := s.next.AddPendingEnrollment(ctx, realm, user, p)
	opAddPending.done(start, err)
	return ok, err
}

// EnrollPending implements sessions.Store.
func (s *instrumentedStore) EnrollPending(ctx context.Context, realm, user string, pendingSealed []byte, e sessions.Enrollment, recoveryHashes []string) error {
	start := time.Now()
	err := s.next.EnrollPending(ctx, realm, user, pendingSealed, e, recoveryHashes)
	opEnrollPending.done(start, err)
	return err
}

// AddFailure implements sessions.Store.
func (s *instrumentedStore) AddFailure(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) (sessions.Attempts, error) {
	start := time.Now()
	a, err := s.next.AddFailure(ctx, realm, key, now, limit)
	opAddFailure.done(start, err)
	return a, err
}

// Attempts implements sessions.Store.
func (s *instrumentedStore) Attempts(ctx context.Context, realm, key string, now time.Time) (sessions.Attempts, error) {
	start := time.Now()
	a, err := s.next.Attempts(ctx, realm, key, now)
	opAttempts.done(start, err)
	return a, err
}

// ClearFailures implements sessions.Store.
func (s *instrumentedStore) ClearFailures(ctx context.Context, realm, key string) error {
	start := time.Now()
	err := s.next.ClearFailures(ctx, realm, key)
	opClearFailures.done(start, err)
	return err
}

// ReserveAttempt implements sessions.Store.
func (s *instrumentedStore) ReserveAttempt(ctx context.Context, realm string, now time.Time, counters ...sessions.Counter) (sessions.Attempts, bool, error) {
	start := time.Now()
	a, ok, err := s.next.ReserveAttempt(ctx, realm, now, counters...)
	opReserveAttempt.done(start, err)
	return a, ok, err
}

// ReleaseAttempt implements sessions.Store.
func (s *instrumentedStore) ReleaseAttempt(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) error {
	start := time.Now()
	err := s.next.ReleaseAttempt(ctx, realm, key, now, limit)
	opReleaseAttempt.done(start, err)
	return err
}

// PutSession implements sessions.Store.
func (s *instrumentedStore) PutSession(ctx context.Context, realm, id string, sess sessions.Session) error {
	start := time.Now()
	err := s.next.PutSession(ctx, realm, id, sess)
	opPutSession.done(start, err)
	return err
}

// Session implements sessions.Store.
func (s *instrumentedStore) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	start := time.Now()
	sess, err := s.next.Session(ctx, realm, id)
	opSession.done(start, err)
	return sess, err
}

// TouchSession implements sessions.Store.
func (s *instrumentedStore) TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error {
	start := time.Now()
	err := s.next.TouchSession(ctx, realm, id, lastSeen)
	opTouchSession.done(start, err)
	return err
}

// DeleteSession implements sessions.Store.
func (s *instrumentedStore) DeleteSession(ctx context.Context, realm, id string) error {
	start := time.Now()
	err := s.next.DeleteSession(ctx, realm, id)
	opDeleteSession.done(start, err)
	return err
}

// UserSessions implements sessions.Store.
func (s *instrumentedStore) UserSessions(ctx context.Context, realm, user string) (int, error) {
	start := time.Now()
	n, err := s.next.UserSessions(ctx, realm, user)
	opUserSessions.done(start, err)
	return n, err
}

// DeleteUserSessions implements sessions.Store.
func (s *instrumentedStore) DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error) {
	start := time.Now()
	n, err := s.next.DeleteUserSessions(ctx, realm, user, keep...)
	opDeleteUserSessions.done(start, err)
	return n, err
}

// PutDevice implements sessions.Store.
func (s *instrumentedStore) PutDevice(ctx context.Context, realm, id string, d sessions.Device) error {
	start := time.Now()
	err := s.next.PutDevice(ctx, realm, id, d)
	opPutDevice.done(start, err)
	return err
}

// Device implements sessions.Store.
func (s *instrumentedStore) Device(ctx context.Context, realm, id string) (sessions.Device, error) {
	start := time.Now()
	d, err := s.next.Device(ctx, realm, id)
	opDevice.done(start, err)
	return d, err
}

// TouchDevice implements sessions.Store.
func (s *instrumentedStore) TouchDevice(ctx context.Context, realm, id string, lastUsed time.Time) error {
	start := time.Now()
	err := s.next.TouchDevice(ctx, realm, id, lastUsed)
	opTouchDevice.done(start, err)
	return err
}

// DeleteDevice implements sessions.Store.
func (s *instrumentedStore) DeleteDevice(ctx context.Context, realm, id string) error {
	start := time.Now()
	err := s.next.DeleteDevice(ctx, realm, id)
	opDeleteDevice.done(start, err)
	return err
}

// UserDevices implements sessions.Store.
func (s *instrumentedStore) UserDevices(ctx context.Context, realm, user string) ([]sessions.Device, error) {
	start := time.Now()
	ds, err := s.next.UserDevices(ctx, realm, user)
	opUserDevices.done(start, err)
	return ds, err
}

// DeleteUserDevices implements sessions.Store.
func (s *instrumentedStore) DeleteUserDevices(ctx context.Context, realm, user string) (int, error) {
	start := time.Now()
	n, err := s.next.DeleteUserDevices(ctx, realm, user)
	opDeleteUserDevices.done(start, err)
	return n, err
}

// PutToken implements sessions.Store.
func (s *instrumentedStore) PutToken(ctx context.Context, realm, kind, id string, value []byte, expires time.Time) error {
	start := time.Now()
	err := s.next.PutToken(ctx, realm, kind, id, value, expires)
	opPutToken.done(start, err)
	return err
}

// ConsumeToken implements sessions.Store.
func (s *instrumentedStore) ConsumeToken(ctx context.Context, realm, kind, id string) ([]byte, error) {
	start := time.Now()
	v, err := s.next.ConsumeToken(ctx, realm, kind, id)
	opConsumeToken.done(start, err)
	return v, err
}

// Users implements sessions.Store.
func (s *instrumentedStore) Users(ctx context.Context, realm string) ([]string, error) {
	start := time.Now()
	us, err := s.next.Users(ctx, realm)
	opUsers.done(start, err)
	return us, err
}

// Profile implements sessions.Store.
func (s *instrumentedStore) Profile(ctx context.Context, realm, user string) (sessions.Profile, error) {
	start := time.Now()
	p, err := s.next.Profile(ctx, realm, user)
	opProfile.done(start, err)
	return p, err
}

// SeeUser implements sessions.Store.
func (s *instrumentedStore) SeeUser(ctx context.Context, realm, user string, t time.Time) (sessions.Profile, error) {
	start := time.Now()
	p, err := s.next.SeeUser(ctx, realm, user, t)
	opSeeUser.done(start, err)
	return p, err
}

// RecordVerification implements sessions.Store.
func (s *instrumentedStore) RecordVerification(ctx context.Context, realm, user, method string, t time.Time) error {
	start := time.Now()
	err := s.next.RecordVerification(ctx, realm, user, method, t)
	opRecordVerification.done(start, err)
	return err
}

// SetDisabled implements sessions.Store.
func (s *instrumentedStore) SetDisabled(ctx context.Context, realm, user string, until time.Time) error {
	start := time.Now()
	err := s.next.SetDisabled(ctx, realm, user, until)
	opSetDisabled.done(start, err)
	return err
}

// Ping implements sessions.Store.
func (s *instrumentedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.next.Ping(ctx)
	opPing.done(start, err)
	return err
}

// Factors implements sessions.Store.
func (s *instrumentedStore) Factors(ctx context.Context, realm, user string) ([]sessions.Factor, error) {
	start := time.Now()
	f, err := s.next.Factors(ctx, realm, user)
	opFactors.done(start, err)
	return f, err
}

// AddFactor implements sessions.Store.
func (s *instrumentedStore) AddFactor(ctx context.Context, realm, user string, f sessions.Factor, maxFactors int) error {
	start := time.Now()
	err := s.next.AddFactor(ctx, realm, user, f, maxFactors)
	opAddFactor.done(start, err)
	return err
}

// RenameFactor implements sessions.Store.
func (s *instrumentedStore) RenameFactor(ctx context.Context, realm, user, id, name string) error {
	start := time.Now()
	err := s.next.RenameFactor(ctx, realm, user, id, name)
	opRenameFactor.done(start, err)
	return err
}

// RemoveFactor implements sessions.Store.
func (s *instrumentedStore) RemoveFactor(ctx context.Context, realm, user, id string, keepOne bool) error {
	start := time.Now()
	err := s.next.RemoveFactor(ctx, realm, user, id, keepOne)
	opRemoveFactor.done(start, err)
	return err
}

// MarkFactorUsed implements sessions.Store.
func (s *instrumentedStore) MarkFactorUsed(ctx context.Context, realm, user, id string, t time.Time) error {
	start := time.Now()
	err := s.next.MarkFactorUsed(ctx, realm, user, id, t)
	opMarkFactorUsed.done(start, err)
	return err
}

// AcceptFactorStep implements sessions.Store.
func (s *instrumentedStore) AcceptFactorStep(ctx context.Context, realm, user, id string, step int64, expires time.Time) (bool, error) {
	start := time.Now()
	ok, err := s.next.AcceptFactorStep(ctx, realm, user, id, step, expires)
	opAcceptFactorStep.done(start, err)
	return ok, err
}
