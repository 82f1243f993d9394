package relgate.error_budget

# Unit tests for relgate.error_budget. Tests use fixture_cfg (the error_budget part of the default
# config) unless named test_default_config_*, which rely on config.default.yaml loaded as
# data.relgate.config.

fixture_cfg := {"error_budget": {
	"exempt_change_types": ["security_fix", "p0_fix", "rollback"],
	"alert_exempt_change_types": ["p0_fix", "rollback"],
	"slo_required": {"production": ["0", "1"]},
	"default_min_remaining": 0,
}}

budget_query := `slo:period_error_budget_remaining:ratio{sloth_service="support-bot",sloth_slo="answer-availability"}`

alert_query := `ALERTS{alertstate="firing",sloth_service="support-bot",sloth_severity="page"}`

slo_entry := {
	"name": "answer-availability",
	"objective": 0.999,
	"source": {"prometheus": {"url": "http://127.0.0.1:9090", "query": budget_query}},
	"min_remaining": 0.05,
	"warn_below": 0.25,
	"block_on_alerts": [alert_query],
}

base := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {"name": "support-answer", "version": "17", "service": "support-bot", "environment": "production", "tier": 1, "change_type": "feature"},
	"spec": {"slo": [slo_entry]},
}

quiet_alert := {"query": alert_query, "url": "http://127.0.0.1:9090", "time": "2026-01-01T00:00:00Z", "firing": false, "series": 0, "error": null}

firing_alert := object.union(quiet_alert, {"firing": true, "series": 2})

failed_alert := object.union(quiet_alert, {"firing": null, "series": null, "time": null, "error": "HTTP 503 from http://127.0.0.1:9090"})

reading_with(value, alerts) := {
	"name": "answer-availability",
	"index": 0,
	"source": "prometheus",
	"remaining": {"query": budget_query, "url": "http://127.0.0.1:9090", "time": "2026-01-01T00:00:00Z", "value": value, "error": null},
	"alerts": alerts,
	"status": "ok",
}

budget_reading(value) := reading_with(value, [quiet_alert])

unknown_reading(error) := object.union(budget_reading(null), {
	"remaining": {"query": budget_query, "url": "http://127.0.0.1:9090", "time": null, "value": null, "error": error},
	"status": "unknown",
	"reason": sprintf("remaining budget: %s", [error]),
})

ev(readings) := {"artifacts": [], "evaluations": [], "slo": readings}

denies(m, e) := fs if {
	fs := deny with input as {"manifest": m, "evidence": e} with data.relgate.config as fixture_cfg
}

warns(m, e) := fs if {
	fs := warn with input as {"manifest": m, "evidence": e} with data.relgate.config as fixture_cfg
}

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

the(fs, rule) := f if {
	matching := of_rule(fs, rule)
	count(matching) == 1
	some f in matching
}

with_meta(m, key, v) := object.union(m, {"metadata": {key: v}})

with_entry(patch) := object.union(base, {"spec": {"slo": [object.union(slo_entry, patch)]}})

without_entry_key(key) := object.union(base, {"spec": {"slo": [object.remove(slo_entry, [key])]}})

with_slo(v) := object.union(object.remove(base, ["spec"]), {"spec": {"slo": v}})

# --- a healthy release -----------------------------------------------------------------------

test_healthy_budget_passes if {
	count(denies(base, ev([budget_reading(0.6)]))) == 0
	count(warns(base, ev([budget_reading(0.6)]))) == 0
}

test_default_config_healthy_budget_passes if {
	count(deny) == 0 with input as {"manifest": base, "evidence": ev([budget_reading(0.6)])}
	count(warn) == 0 with input as {"manifest": base, "evidence": ev([budget_reading(0.6)])}
}

# --- SLO-BUDGET-EXHAUSTED --------------------------------------------------------------------

test_exhausted_denied if {
	f := the(denies(base, ev([budget_reading(-0.12)])), "SLO-BUDGET-EXHAUSTED")
	f.path == "spec.slo[0].min_remaining"
	contains(f.msg, "answer-availability")
	contains(f.msg, "-0.12")
	contains(f.msg, "0.05")
	contains(f.msg, budget_query)
	contains(f.msg, "2026-01-01T00:00:00Z")
	contains(f.remediation, "security_fix")
}

test_exhausted_just_below_bound if {
	the(denies(base, ev([budget_reading(0.049)])), "SLO-BUDGET-EXHAUSTED")
}

test_at_bound_is_not_exhausted if {
	count(of_rule(denies(base, ev([budget_reading(0.05)])), "SLO-BUDGET-EXHAUSTED")) == 0
}

test_exhausted_exempt_change_warns if {
	some change in ["security_fix", "p0_fix", "rollback"]
	m := with_meta(base, "change_type", change)
	count(of_rule(denies(m, ev([budget_reading(-0.12)])), "SLO-BUDGET-EXHAUSTED")) == 0
	f := the(warns(m, ev([budget_reading(-0.12)])), "SLO-BUDGET-EXHAUSTED")
	contains(f.msg, sprintf("change_type %s is exempt", [change]))
	contains(f.msg, "-0.12")
}

test_exhausted_config_change_not_exempt if {
	the(denies(with_meta(base, "change_type", "config"), ev([budget_reading(-0.12)])), "SLO-BUDGET-EXHAUSTED")
}

test_default_min_remaining_is_zero if {
	m := without_entry_key("min_remaining")
	f := the(denies(m, ev([budget_reading(-0.01)])), "SLO-BUDGET-EXHAUSTED")
	contains(f.msg, "below min_remaining 0")
	count(of_rule(denies(m, ev([budget_reading(0)])), "SLO-BUDGET-EXHAUSTED")) == 0
}

test_default_min_remaining_from_config if {
	m := without_entry_key("min_remaining")
	cfg := object.union(fixture_cfg, {"error_budget": {"default_min_remaining": 0.5}})
	fs := deny with input as {"manifest": m, "evidence": ev([budget_reading(0.3)])} with data.relgate.config as cfg
	the(fs, "SLO-BUDGET-EXHAUSTED")
}

test_default_config_exempt_change_types if {
	m := with_meta(base, "change_type", "rollback")
	count(of_rule(deny, "SLO-BUDGET-EXHAUSTED")) == 0 with input as {"manifest": m, "evidence": ev([budget_reading(-1)])}
	count(of_rule(warn, "SLO-BUDGET-EXHAUSTED")) == 1 with input as {"manifest": m, "evidence": ev([budget_reading(-1)])}
}

# --- SLO-BUDGET-LOW --------------------------------------------------------------------------

test_low_budget_warns if {
	count(denies(base, ev([budget_reading(0.1)]))) == 0
	f := the(warns(base, ev([budget_reading(0.1)])), "SLO-BUDGET-LOW")
	f.path == "spec.slo[0].warn_below"
	contains(f.msg, "0.1")
	contains(f.msg, "0.25")
	contains(f.msg, budget_query)
}

test_low_not_repeated_when_exhausted if {
	count(of_rule(warns(base, ev([budget_reading(-0.5)])), "SLO-BUDGET-LOW")) == 0
}

test_no_warn_below_no_low_warning if {
	count(warns(without_entry_key("warn_below"), ev([budget_reading(0.06)]))) == 0
}

test_at_warn_bound_no_low_warning if {
	count(warns(base, ev([budget_reading(0.25)]))) == 0
}

# --- SLO-ALERT-FIRING ------------------------------------------------------------------------

test_firing_alert_denied if {
	f := the(denies(base, ev([reading_with(0.6, [firing_alert])])), "SLO-ALERT-FIRING")
	f.path == "spec.slo[0].block_on_alerts[0]"
	contains(f.msg, alert_query)
	contains(f.msg, "2 firing series")
}

test_second_alert_path if {
	fs := denies(base, ev([reading_with(0.6, [quiet_alert, firing_alert])]))
	f := the(fs, "SLO-ALERT-FIRING")
	f.path == "spec.slo[0].block_on_alerts[1]"
}

test_quiet_alert_passes if {
	count(of_rule(denies(base, ev([reading_with(0.6, [quiet_alert, quiet_alert])])), "SLO-ALERT-FIRING")) == 0
}

test_firing_alert_exempt_for_fix_and_rollback if {
	some change in ["p0_fix", "rollback"]
	m := with_meta(base, "change_type", change)
	count(of_rule(denies(m, ev([reading_with(0.6, [firing_alert])])), "SLO-ALERT-FIRING")) == 0
	f := the(warns(m, ev([reading_with(0.6, [firing_alert])])), "SLO-ALERT-FIRING")
	contains(f.msg, "alert_exempt_change_types")
}

test_firing_alert_blocks_security_fix if {
	m := with_meta(base, "change_type", "security_fix")
	the(denies(m, ev([reading_with(0.6, [firing_alert])])), "SLO-ALERT-FIRING")
}

# --- SLO-UNKNOWN -----------------------------------------------------------------------------

test_unknown_denied_with_reason if {
	f := the(denies(base, ev([unknown_reading("cannot connect to http://127.0.0.1:9090: Connection refused")])), "SLO-UNKNOWN")
	f.path == "spec.slo[0].source"
	contains(f.msg, "Connection refused")
	contains(f.msg, budget_query)
}

test_unknown_warns_with_on_unknown_warn if {
	m := with_entry({"on_unknown": "warn"})
	e := ev([unknown_reading("the value is NaN, not a finite number")])
	count(of_rule(denies(m, e), "SLO-UNKNOWN")) == 0
	f := the(warns(m, e), "SLO-UNKNOWN")
	contains(f.msg, "NaN")
	contains(f.msg, "on_unknown is warn")
}

# A URL outside error_budget.prometheus.allowed_urls: denied once, at the url, whatever
# on_unknown and the change type say (both are the manifest author's).
test_refused_url_denies_even_with_on_unknown_warn_and_exemption if {
	msg := "the Prometheus URL `http://evil:9090` is not in error_budget.prometheus.allowed_urls"
	r := object.union(unknown_reading(msg), {"refused": msg})
	m := with_meta(with_entry({"on_unknown": "warn"}), "change_type", "rollback")
	f := the(denies(m, ev([r])), "SLO-UNKNOWN")
	f.path == "spec.slo[0].source.prometheus.url"
	contains(f.msg, "allowed_urls")
	count(of_rule(warns(m, ev([r])), "SLO-UNKNOWN")) == 0
	the(denies(base, ev([r])), "SLO-UNKNOWN")
}

test_unknown_on_unknown_fail_denies if {
	the(denies(with_entry({"on_unknown": "fail"}), ev([unknown_reading("x")])), "SLO-UNKNOWN")
}

test_no_reading_is_unknown if {
	f := the(denies(base, ev([])), "SLO-UNKNOWN")
	contains(f.msg, "no reading")
	the(denies(base, {}), "SLO-UNKNOWN")
	# a reading for another entry does not count
	the(denies(base, ev([object.union(budget_reading(0.6), {"index": 1})])), "SLO-UNKNOWN")
}

test_failed_alert_is_unknown if {
	f := the(denies(base, ev([reading_with(0.6, [failed_alert])])), "SLO-UNKNOWN")
	contains(f.msg, "the reading has no value")
	r := object.union(reading_with(0.6, [failed_alert]), {"status": "unknown", "reason": "alert `x`: HTTP 503"})
	contains(the(denies(base, ev([r])), "SLO-UNKNOWN").msg, "HTTP 503")
}

test_remaining_error_wins_over_value if {
	r := object.union(budget_reading(0.6), {"remaining": object.union(budget_reading(0.6).remaining, {"error": "stale"})})
	the(denies(base, ev([r])), "SLO-UNKNOWN")
}

test_unknown_budget_irrelevant_for_exempt_change if {
	m := with_meta(base, "change_type", "rollback")
	e := ev([object.union(unknown_reading("offline"), {"alerts": [failed_alert]})])
	count(denies(m, e)) == 0
	f := the(warns(m, e), "SLO-UNKNOWN")
	contains(f.msg, "change_type rollback is exempt")
}

test_unknown_alerts_irrelevant_for_alert_exempt_change if {
	m := with_meta(base, "change_type", "p0_fix")
	e := ev([reading_with(0.6, [failed_alert])])
	count(denies(m, e)) == 0
	f := the(warns(m, e), "SLO-UNKNOWN")
	contains(f.msg, "change_type p0_fix is exempt")
}

test_unknown_alerts_matter_for_budget_exempt_change if {
	# security_fix is exempt from the budget but not from alerts
	m := with_meta(base, "change_type", "security_fix")
	the(denies(m, ev([reading_with(-1, [failed_alert])])), "SLO-UNKNOWN")
	# and an unknown budget alone only warns
	count(of_rule(denies(m, ev([unknown_reading("offline")])), "SLO-UNKNOWN")) == 0
	the(warns(m, ev([unknown_reading("offline")])), "SLO-UNKNOWN")
}

test_non_numeric_bound_denied if {
	f := the(denies(with_entry({"min_remaining": "ten percent"}), ev([budget_reading(0.6)])), "SLO-UNKNOWN")
	f.path == "spec.slo[0].min_remaining"
	g := the(denies(with_entry({"warn_below": true}), ev([budget_reading(0.6)])), "SLO-UNKNOWN")
	g.path == "spec.slo[0].warn_below"
}

# --- SLO-MISSING -----------------------------------------------------------------------------

test_missing_slo_denied if {
	m := object.remove(base, ["spec"])
	f := the(denies(m, ev([])), "SLO-MISSING")
	f.path == "spec.slo"
	contains(f.msg, "production tier 1")
	the(denies(with_slo([]), ev([])), "SLO-MISSING")
	the(denies(with_slo("answer-availability"), ev([])), "SLO-MISSING")
	the(denies(with_meta(m, "tier", "0"), ev([])), "SLO-MISSING")
}

test_missing_slo_allowed_elsewhere if {
	m := object.remove(base, ["spec"])
	count(denies(with_meta(m, "tier", 2), ev([]))) == 0
	count(denies(with_meta(m, "environment", "staging"), ev([]))) == 0
	count(denies(with_meta(m, "environment", "dev"), ev([]))) == 0
}

test_missing_slo_configurable if {
	m := with_meta(object.remove(base, ["spec"]), "environment", "staging")
	cfg := object.union(fixture_cfg, {"error_budget": {"slo_required": {"staging": ["1"]}}})
	fs := deny with input as {"manifest": m, "evidence": ev([])} with data.relgate.config as cfg
	the(fs, "SLO-MISSING")
}

test_default_config_missing_slo if {
	m := object.remove(base, ["spec"])
	count(of_rule(deny, "SLO-MISSING")) == 1 with input as {"manifest": m, "evidence": ev([])}
}

# --- robustness ------------------------------------------------------------------------------

test_malformed_evidence_does_not_error if {
	count(of_rule(denies(base, {"slo": null}), "SLO-UNKNOWN")) == 1
	count(of_rule(denies(base, {"slo": [null, "x", {"index": 0, "remaining": null, "alerts": null}]}), "SLO-UNKNOWN")) == 1
	count(of_rule(denies(base, ev([object.union(budget_reading(0.6), {"alerts": "nope"})])), "SLO-UNKNOWN")) == 0
}

test_malformed_manifest_does_not_error if {
	count(denies({"spec": {"slo": [null, 1, "x"]}}, ev([]))) == 0
	count(deny) == 0 with input as {"manifest": "x"} with data.relgate.config as fixture_cfg
	count(deny) == 0 with input as {} with data.relgate.config as fixture_cfg
}

test_malformed_config_does_not_error if {
	fs := deny with input as {"manifest": base, "evidence": ev([budget_reading(-1)])} with data.relgate.config as {"error_budget": {"exempt_change_types": null, "slo_required": null, "default_min_remaining": "x"}}
	count(of_rule(fs, "SLO-BUDGET-EXHAUSTED")) == 1
	gs := deny with input as {"manifest": base, "evidence": ev([budget_reading(-1)])} with data.relgate.config as null
	count(of_rule(gs, "SLO-BUDGET-EXHAUSTED")) == 1
}

# --- org floors: error_budget.min_remaining_floor, error_budget.on_unknown_fail_required ------

# A manifest cannot lower its own freeze bound below the org's floor.
test_min_remaining_below_floor_uses_floor if {
	m := with_entry({"min_remaining": -1})
	f := the(denies(m, ev([budget_reading(-0.42)])), "SLO-BUDGET-EXHAUSTED")
	f.path == "spec.slo[0].min_remaining"
	contains(f.msg, "remaining -0.42 is below min_remaining 0 (the org floor error_budget.min_remaining_floor; the manifest's min_remaining -1 is lower")
	# at or above the floor the stated bound still passes a healthy budget
	count(denies(m, ev([budget_reading(0.01)]))) == 0
}

test_min_remaining_above_floor_is_kept if {
	f := the(denies(base, ev([budget_reading(0.01)])), "SLO-BUDGET-EXHAUSTED")
	contains(f.msg, "below min_remaining 0.05 (")
	not contains(f.msg, "org floor")
}

test_min_remaining_floor_from_config if {
	cfg := object.union(fixture_cfg, {"error_budget": {"min_remaining_floor": 0.1}})
	fs := deny with input as {"manifest": base, "evidence": ev([budget_reading(0.07)])} with data.relgate.config as cfg
	f := the(fs, "SLO-BUDGET-EXHAUSTED")
	contains(f.msg, "below min_remaining 0.1 (the org floor")
	# a default_min_remaining below the floor does not lower it either
	cfg2 := object.union(fixture_cfg, {"error_budget": {"min_remaining_floor": 0.1, "default_min_remaining": -5}})
	fs2 := deny with input as {"manifest": without_entry_key("min_remaining"), "evidence": ev([budget_reading(0.07)])} with data.relgate.config as cfg2
	the(fs2, "SLO-BUDGET-EXHAUSTED")
}

test_min_remaining_floor_not_a_number_is_zero if {
	cfg := object.union(fixture_cfg, {"error_budget": {"min_remaining_floor": "-1"}})
	fs := deny with input as {"manifest": with_entry({"min_remaining": -1}), "evidence": ev([budget_reading(-0.42)])} with data.relgate.config as cfg
	the(fs, "SLO-BUDGET-EXHAUSTED")
}

test_default_config_min_remaining_floor if {
	fs := deny with input as {"manifest": with_entry({"min_remaining": -1}), "evidence": ev([budget_reading(-0.42)])}
	the(fs, "SLO-BUDGET-EXHAUSTED")
}

test_on_unknown_warn_not_honoured_where_config_requires_fail if {
	cfg := object.union(fixture_cfg, {"error_budget": {"on_unknown_fail_required": {"production": ["1"]}}})
	m := with_entry({"on_unknown": "warn"})
	e := ev([unknown_reading("cannot connect")])
	fs := deny with input as {"manifest": m, "evidence": e} with data.relgate.config as cfg
	f := the(fs, "SLO-UNKNOWN")
	contains(f.msg, "on_unknown: warn is not honoured for production tier 1 releases (error_budget.on_unknown_fail_required)")
	ws := warn with input as {"manifest": m, "evidence": e} with data.relgate.config as cfg
	count(of_rule(ws, "SLO-UNKNOWN")) == 0
	# another tier keeps its on_unknown: warn
	m2 := with_meta(m, "tier", 2)
	count(of_rule(deny, "SLO-UNKNOWN")) == 0 with input as {"manifest": m2, "evidence": e} with data.relgate.config as cfg
}

test_default_config_on_unknown_fail_required_tier_0 if {
	m := with_meta(with_entry({"on_unknown": "warn"}), "tier", 0)
	e := ev([unknown_reading("cannot connect")])
	the(deny, "SLO-UNKNOWN") with input as {"manifest": m, "evidence": e}
	# tier 1 may still release with on_unknown: warn by default
	count(of_rule(deny, "SLO-UNKNOWN")) == 0 with input as {"manifest": with_entry({"on_unknown": "warn"}), "evidence": e}
}
