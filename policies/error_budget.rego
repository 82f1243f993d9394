# relgate.error_budget: error budgets and paging alerts of the SLOs a release names (`spec.slo`).
#
# Rules: SLO-BUDGET-EXHAUSTED, SLO-BUDGET-LOW, SLO-ALERT-FIRING, SLO-UNKNOWN, SLO-MISSING.
#
# Evidence: input.evidence.slo, one reading per spec.slo entry, matched by its `index`
# (src/evidence/slo.rs, docs/error-budget.md):
#   {name, index, source, remaining: {query, url|file, time, value, error},
#    alerts: [{query, url|file, time, firing, series, error}], status: ok|unknown, reason?}
#
# Semantics:
# - min_remaining defaults to config error_budget.default_min_remaining (default 0.0), and is
#   never below config error_budget.min_remaining_floor (default 0.0): a manifest stating a
#   lower bound gets the floor, and the message says so. A budget is exhausted when
#   remaining < min_remaining (strictly). warn_below has no default: without
#   it SLO-BUDGET-LOW is not checked.
# - SLO-BUDGET-EXHAUSTED denies, unless metadata.change_type is in
#   error_budget.exempt_change_types (default security_fix, p0_fix, rollback): then the same
#   finding is a warning that says the release is exempt.
# - SLO-BUDGET-LOW warns when min_remaining <= remaining < warn_below (below min_remaining,
#   SLO-BUDGET-EXHAUSTED speaks instead).
# - SLO-ALERT-FIRING denies per block_on_alerts query that returned a series, unless
#   change_type is in error_budget.alert_exempt_change_types (default p0_fix, rollback: the fix
#   or rollback for a firing incident must not be blocked by that incident's alert): then a
#   warning that says the release is exempt.
# - SLO-UNKNOWN (path spec.slo[i].source.prometheus.url) denies, whatever on_unknown and the
#   exemptions say, when relgate refused the entry's Prometheus URL (`refused` on the reading:
#   not in error_budget.prometheus.allowed_urls).
# - SLO-UNKNOWN (path spec.slo[i].source) when a part of the reading has no value (query failed,
#   timed out, empty, several series, NaN, --offline, unreadable file, no reading at all). It
#   denies, or warns with the entry's `on_unknown: warn` unless the release's tier is listed in
#   config error_budget.on_unknown_fail_required[environment] (default production: ["0"]),
#   where it denies and says that on_unknown: warn is not honoured. An unknown part that an exemption
#   makes irrelevant (the remaining budget for a budget-exempt change, alerts for an
#   alert-exempt change) only warns, saying so. A min_remaining or warn_below that is not a
#   number always denies (the bound cannot be applied).
# - SLO-MISSING denies a release with no spec.slo entry (missing, empty or not a list) whose
#   tier (as a string) is listed in error_budget.slo_required[environment] (default
#   production: ["0", "1"]).
package relgate.error_budget

import data.relgate.lib
import data.relgate.lib.cfg
import data.relgate.lib.manifest
import data.relgate.lib.environment
import data.relgate.lib.change_type
import data.relgate.lib.tier_key

# ---------------------------------------------------------------------------------------------
# Inputs: cfg, manifest and the metadata fields come from relgate.lib (safe defaults).

slos := s if {
	s := object.get(manifest, ["spec", "slo"], [])
	is_array(s)
} else := []

readings := r if {
	r := object.get(input, ["evidence", "slo"], [])
	is_array(r)
} else := []

# The reading of spec.slo[i] (undefined when relgate gathered none).
reading(i) := rs[0] if {
	rs := [r | some r in readings; is_object(r); r.index == i]
	count(rs) > 0
}

budget_exempt if change_type in lib.cfg_list(["error_budget", "exempt_change_types"])

alert_exempt if change_type in lib.cfg_list(["error_budget", "alert_exempt_change_types"])

entry_name(slo, i) := n if {
	n := slo.name
	is_string(n)
} else := sprintf("spec.slo[%d]", [i])

default_min_remaining := d if {
	d := object.get(cfg, ["error_budget", "default_min_remaining"], 0)
	is_number(d)
} else := 0

# The org's floor under every min_remaining (config error_budget.min_remaining_floor): a
# manifest's own `min_remaining: -1` would otherwise pass an exhausted budget. A floor that is
# not a number falls back to 0 (fail closed: the budget may not be overspent).
min_remaining_floor := d if {
	d := object.get(cfg, ["error_budget", "min_remaining_floor"], 0)
	is_number(d)
} else := 0

# The bound the manifest states (or the config default when it states none).
stated_min_remaining(slo) := m if {
	m := object.get(slo, "min_remaining", null)
	is_number(m)
} else := default_min_remaining if {
	object.get(slo, "min_remaining", null) == null
}

# The bound applied: the stated one, raised to the floor.
min_remaining(slo) := max([stated_min_remaining(slo), min_remaining_floor])

# " (...)" when the floor replaced a lower stated bound, for messages.
floor_note(slo) := sprintf(" (the org floor error_budget.min_remaining_floor; the manifest's min_remaining %v is lower and does not count)", [stated_min_remaining(slo)]) if {
	stated_min_remaining(slo) < min_remaining_floor
} else := ""

warn_below(slo) := w if {
	w := object.get(slo, "warn_below", null)
	is_number(w)
}

text_or(x, fallback) := x if {
	is_string(x)
} else := fallback

remaining_part(r) := p if {
	p := r.remaining
	is_object(p)
} else := {}

alerts_part(r) := a if {
	a := r.alerts
	is_array(a)
} else := []

# The remaining budget, when the reading has one.
remaining_value(r) := v if {
	p := remaining_part(r)
	v := p.value
	is_number(v)
	object.get(p, "error", null) == null
}

query_of(p) := text_or(object.get(p, "query", null), "(no query)")

# "query `q` at <time>" for messages.
where(p) := sprintf("query `%s` at %s", [query_of(p), text_or(object.get(p, "time", null), "an unknown time")])

exempt_note(list) := sprintf("allowed because change_type %s is exempt (error_budget.%s)", [change_type, list])

# The entries that are mappings, by index.
entries[i] := slo if {
	some i, slo in slos
	is_object(slo)
}

# ---------------------------------------------------------------------------------------------
# SLO-BUDGET-EXHAUSTED

exhausted contains i if {
	some i, slo in entries
	remaining_value(reading(i)) < min_remaining(slo)
}

exhausted_msg(i) := sprintf("SLO %s: error budget remaining %v is below min_remaining %v%s (%s)", [entry_name(entries[i], i), remaining_value(reading(i)), min_remaining(entries[i]), floor_note(entries[i]), where(remaining_part(reading(i)))])

deny contains f if {
	not budget_exempt
	some i in exhausted
	bound := min_remaining(entries[i])
	f := {
		"rule": "SLO-BUDGET-EXHAUSTED",
		"path": sprintf("spec.slo[%d].min_remaining", [i]),
		"msg": sprintf("%s; feature and config releases are frozen until the budget recovers", [exhausted_msg(i)]),
		"remediation": sprintf("spend the release on reliability until the budget is back above %v (it recovers as the SLO window rolls on); an urgent fix may ship with metadata.change_type one of: %s", [bound, concat(", ", [t | some t in lib.cfg_list(["error_budget", "exempt_change_types"]); is_string(t)])]),
	}
}

warn contains f if {
	budget_exempt
	some i in exhausted
	f := {
		"rule": "SLO-BUDGET-EXHAUSTED",
		"path": sprintf("spec.slo[%d].min_remaining", [i]),
		"msg": sprintf("%s; %s", [exhausted_msg(i), exempt_note("exempt_change_types")]),
		"remediation": "watch the rollout closely: the service has no error budget left",
	}
}

# ---------------------------------------------------------------------------------------------
# SLO-BUDGET-LOW

warn contains f if {
	some i, slo in entries
	r := reading(i)
	v := remaining_value(r)
	v >= min_remaining(slo)
	bound := warn_below(slo)
	v < bound
	f := {
		"rule": "SLO-BUDGET-LOW",
		"path": sprintf("spec.slo[%d].warn_below", [i]),
		"msg": sprintf("SLO %s: error budget remaining %v is below warn_below %v (%s)", [entry_name(slo, i), v, bound, where(remaining_part(r))]),
		"remediation": "prefer a small canary and a long bake time; the budget is close to its freeze bound",
	}
}

# ---------------------------------------------------------------------------------------------
# SLO-ALERT-FIRING

firing contains [i, j] if {
	some i, _ in entries
	some j, a in alerts_part(reading(i))
	is_object(a)
	a.firing == true
}

firing_msg(i, j) := msg if {
	slo := entries[i]
	a := alerts_part(reading(i))[j]
	msg := sprintf("SLO %s: alert query `%s` returns %v firing series (at %s)", [entry_name(slo, i), query_of(a), object.get(a, "series", "some"), text_or(object.get(a, "time", null), "an unknown time")])
}

deny contains f if {
	not alert_exempt
	some pair in firing
	i := pair[0]
	j := pair[1]
	f := {
		"rule": "SLO-ALERT-FIRING",
		"path": sprintf("spec.slo[%d].block_on_alerts[%d]", [i, j]),
		"msg": sprintf("%s; releases are blocked while it fires", [firing_msg(i, j)]),
		"remediation": sprintf("resolve the incident first; a fix or rollback for it may ship with metadata.change_type one of: %s", [concat(", ", [t | some t in lib.cfg_list(["error_budget", "alert_exempt_change_types"]); is_string(t)])]),
	}
}

warn contains f if {
	alert_exempt
	some pair in firing
	i := pair[0]
	j := pair[1]
	f := {
		"rule": "SLO-ALERT-FIRING",
		"path": sprintf("spec.slo[%d].block_on_alerts[%d]", [i, j]),
		"msg": sprintf("%s; %s", [firing_msg(i, j), exempt_note("alert_exempt_change_types")]),
		"remediation": "make sure this release is the fix or rollback for the firing alert",
	}
}

# ---------------------------------------------------------------------------------------------
# SLO-UNKNOWN

# The remaining budget of entry i cannot be read (or there is no reading at all).
budget_unknown(i) if not reading(i)

budget_unknown(i) if {
	r := reading(i)
	not remaining_value(r)
	not source_refused(i)
}

# Some block_on_alerts reading of entry i has no answer.
alerts_unknown(i) if {
	r := reading(i)
	some a in alerts_part(r)
	not alert_known(a)
	not source_refused(i)
}

# relgate refused the entry's source: a Prometheus URL outside the gate config's
# error_budget.prometheus.allowed_urls (never requested). The config's refusal, not a missing
# value: it denies whatever on_unknown or an exemption says, since the manifest (which sets
# both) must not be able to point the gate at a server of its choosing.
source_refused(i) := msg if {
	msg := reading(i).refused
	is_string(msg)
}

deny contains f if {
	some i, slo in entries
	msg := source_refused(i)
	f := {
		"rule": "SLO-UNKNOWN",
		"path": sprintf("spec.slo[%d].source.prometheus.url", [i]),
		"msg": sprintf("SLO %s: %s", [entry_name(slo, i), msg]),
		"remediation": "point source.prometheus.url at a Prometheus listed in error_budget.prometheus.allowed_urls of the gate's config, or have that list extended (docs/error-budget.md)",
	}
}

alert_known(a) if {
	is_object(a)
	is_boolean(a.firing)
	object.get(a, "error", null) == null
}

any_unknown(i) if budget_unknown(i)

any_unknown(i) if alerts_unknown(i)

unknown_matters(i) if {
	budget_unknown(i)
	not budget_exempt
}

unknown_matters(i) if {
	alerts_unknown(i)
	not alert_exempt
}

unknown_reason(i) := "relgate gathered no reading for this entry" if {
	not reading(i)
} else := reason if {
	reason := reading(i).reason
	is_string(reason)
} else := reason if {
	reason := remaining_part(reading(i)).error
	is_string(reason)
} else := "the reading has no value"

unknown_msg(i, slo) := sprintf("SLO %s: the error budget cannot be judged: %s (remaining-budget query `%s`)", [entry_name(slo, i), unknown_reason(i), q]) if {
	q := remaining_part(reading(i)).query
	is_string(q)
} else := sprintf("SLO %s: the error budget cannot be judged: %s", [entry_name(slo, i), unknown_reason(i)])

# `on_unknown: warn` is the manifest lowering its own bar (releasing blind), so it is honoured
# only outside config error_budget.on_unknown_fail_required[environment] (default production
# tier 0).
on_unknown_warn(slo) if {
	object.get(slo, "on_unknown", "fail") == "warn"
	not unknown_must_fail
}

unknown_must_fail if tier_key in lib.cfg_list(["error_budget", "on_unknown_fail_required", environment])

unknown_fail_note(slo) := sprintf("; on_unknown: warn is not honoured for %s tier %s releases (error_budget.on_unknown_fail_required)", [environment, tier_key]) if {
	object.get(slo, "on_unknown", "fail") == "warn"
	unknown_must_fail
} else := ""

unknown_remediation := "make the source answer (Prometheus reachable, the query returning one finite series, the file present and current); set on_unknown: warn on the SLO entry to release without it"

deny contains f if {
	some i, slo in entries
	unknown_matters(i)
	not on_unknown_warn(slo)
	f := {
		"rule": "SLO-UNKNOWN",
		"path": sprintf("spec.slo[%d].source", [i]),
		"msg": sprintf("%s%s", [unknown_msg(i, slo), unknown_fail_note(slo)]),
		"remediation": unknown_remediation,
	}
}

warn contains f if {
	some i, slo in entries
	unknown_matters(i)
	on_unknown_warn(slo)
	f := {
		"rule": "SLO-UNKNOWN",
		"path": sprintf("spec.slo[%d].source", [i]),
		"msg": sprintf("%s; releasing anyway because on_unknown is warn", [unknown_msg(i, slo)]),
		"remediation": unknown_remediation,
	}
}

warn contains f if {
	some i, slo in entries
	any_unknown(i)
	not unknown_matters(i)
	f := {
		"rule": "SLO-UNKNOWN",
		"path": sprintf("spec.slo[%d].source", [i]),
		"msg": sprintf("%s; not blocking because change_type %s is exempt", [unknown_msg(i, slo), change_type]),
		"remediation": unknown_remediation,
	}
}

# Bounds that are not numbers cannot be applied.
deny contains f if {
	some i, slo in entries
	some key in ["min_remaining", "warn_below"]
	b := object.get(slo, key, null)
	b != null
	not is_number(b)
	f := {
		"rule": "SLO-UNKNOWN",
		"path": sprintf("spec.slo[%d].%s", [i, key]),
		"msg": sprintf("SLO %s: %s is %v, not a number, so the error budget cannot be judged", [entry_name(slo, i), key, b]),
		"remediation": sprintf("set %s to a budget fraction, e.g. 0.1", [key]),
	}
}

# ---------------------------------------------------------------------------------------------
# SLO-MISSING

deny contains f if {
	tier_key in lib.cfg_list(["error_budget", "slo_required", environment])
	count(entries) == 0
	f := {
		"rule": "SLO-MISSING",
		"path": "spec.slo",
		"msg": sprintf("%s tier %s releases must name at least one SLO (error_budget.slo_required), and spec.slo has none", [environment, tier_key]),
		"remediation": "add spec.slo with the service's SLO: source (prometheus url and remaining-budget query, or a file), min_remaining and block_on_alerts; see docs/error-budget.md",
	}
}
