package caddymodule

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// audit logs a security event in the audit schema (docs/audit.md): event,
// realm, user, client_ip, method, result, and reason when there is one,
// then the event's documented details (extra). Successes are logged at
// info, everything else at warn. It never logs codes, secrets or cookies.
func (h *Handler) audit(r *http.Request, event, user, method, result, reason string, extra ...zap.Field) {
	h.observe(event, method, result, reason)
	level := zapcore.InfoLevel
	if result != "success" {
		level = zapcore.WarnLevel
	}
	if ce := h.logger.Check(level, "two-factor "+event); ce != nil {
		ce.Write(auditFields(event, h.Realm, user, clientIP(r), method, result, reason, extra)...)
	}
}

// auditFields is one audit line's fields, in the schema's order.
func auditFields(event, realm, user, clientIP, method, result, reason string, extra []zap.Field) []zap.Field {
	fields := make([]zap.Field, 0, 7+len(extra))
	fields = append(fields,
		zap.String("event", event),
		zap.String("realm", realm),
		zap.String("user", user),
		zap.String("client_ip", clientIP),
		zap.String("method", method),
		zap.String("result", result),
	)
	if reason != "" {
		fields = append(fields, zap.String("reason", reason))
	}
	return append(fields, extra...)
}
